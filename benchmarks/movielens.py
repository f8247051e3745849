"""Benchmark: recommendation quality on MovieLens-100K with the project's own model classes
(issue 5), against the numbers the TensorFlow Recommenders tutorials publish.

Data: the 100,000 ratings of MovieLens-100K from the ``recbole==1.2.1`` wheel (downloaded once into
``--cache``), with TFDS' column names (``lakecart.training.movielens``). Protocol of the tutorials:
one shuffle with seed 42, the first 80,000 ratings train, the next 20,000 test. Retrieval ranks the
whole catalogue of 1,664 movie titles (watched movies are not removed) and reports top-k accuracy,
the share of test ratings whose movie is among the k best (``recall_at_k`` over the catalogue).

Configurations, side by side:

- ``popularity``: the most-rated training movies for everyone (a baseline, no training).
- ``basic-retrieval``: the TFRS basic retrieval tutorial with ``TwoTowerRetrieval``: user_id and
  movie_title embeddings of 32, Adagrad 0.1, batch 8192, 3 epochs; one run per ``--seeds`` seed
  (our split is not TFDS' byte order, so the spread is reported). Published top-10/50/100:
  0.021 / 0.122 / 0.233.
- ``basic-retrieval+logq``: the same model and training with one change, the logQ correction of
  in-batch negatives (``candidate_probability``: a popular title is a negative in many batches, and
  without the correction the model learns to push popular titles down).
- ``best-retrieval``: user features (age group, gender, occupation, zip) and the rating's time in
  the query tower; title, genres and release year in the candidate tower; one hidden layer of 64 and
  32-d outputs; the logQ correction; Adam 0.01, batch 2048, 6 epochs. Target top-100 >= 0.30.
- ``dcn-published`` / ``dnn-published``: the TFRS DCN tutorial with ``DCNRanking``: movie_id,
  user_id, gender, zip, occupation and age group embedded in 32; one cross layer (or none, the DNN)
  and deep layers (192, 192); Adam 0.01; batch 8192; 8 epochs; test RMSE over ``--ranking-runs``
  runs. Published: DCN 0.9326 +- 0.0015, DNN 0.9350.
- ``dcn-best`` / ``dnn-best``: the same model with the movie's genres and release year and, per user and
  per movie, the smoothed mean training rating and the number of training ratings (out of fold on the
  training rows: a row's own rating never feeds its features); two cross layers (none: the DNN);
  batch 1024, Adam 0.002 with a cosine decay, 10 epochs. Target RMSE <= 0.925. Also reported, not
  as a target number: the RMSE of the average of the runs' predictions (an ensemble).

Tuning happened with ``--validation`` only: models fit on the first 72,000 training ratings and are
scored on the last 8,000 of them; the 20,000 test ratings are not read in that mode.

Writes one JSON line per configuration to ``bench-results/movielens.jsonl``, a Markdown table to
stdout, and a plot to ``bench-results/movielens.png``.

    TF_CPP_MIN_LOG_LEVEL=2 .venv/pipeline/bin/python benchmarks/movielens.py
    TF_CPP_MIN_LOG_LEVEL=2 .venv/pipeline/bin/python benchmarks/movielens.py --quick   # smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parents[1]
KS = (10, 50, 100)
GENRES_LENGTH = 6  # the most genres any movie has
USER_IDS = ("user_id", "bucketized_user_age", "user_gender", "user_occupation_text", "user_zip_code")
DCN_IDS = ("movie_id", "user_id", "user_gender", "user_zip_code", "user_occupation_text", "bucketized_user_age")


@dataclass(frozen=True)
class RetrievalConfig:
    name: str
    query_ids: tuple[str, ...] = ("user_id",)
    query_time: bool = False  # the rating's timestamp (standardised) in the query tower
    candidate_ids: tuple[str, ...] = ("movie_title",)
    candidate_genres: bool = False
    candidate_year: bool = False
    embedding_dim: int = 32
    hidden_layers: tuple[int, ...] = ()
    output_dim: int | None = None
    optimizer: str = "adagrad"
    learning_rate: float = 0.1
    batch_size: int = 8192
    epochs: int = 3
    temperature: float | None = None
    logq: bool = False  # candidate_probability: the logQ correction of in-batch negatives
    published: dict = field(default_factory=dict)
    target: str = ""


@dataclass(frozen=True)
class RankingConfig:
    name: str
    ids: tuple[str, ...] = DCN_IDS
    genres: bool = False
    numeric: tuple[str, ...] = ()  # "release_year", "timestamp"
    embedding_dim: int = 32
    cross_layers: int = 1
    deep_layers: tuple[int, ...] = (192, 192)
    projection_dim: int | None = None
    learning_rate: float = 0.01
    cosine_decay: bool = False
    batch_size: int = 8192
    epochs: int = 8
    published: dict = field(default_factory=dict)
    target: str = ""


BASIC = RetrievalConfig(
    name="basic-retrieval",
    published={"top10": 0.021, "top50": 0.122, "top100": 0.233},
    target="top100 within 0.233 +- 0.01",
)
BASIC_LOGQ = replace(BASIC, name="basic-retrieval+logq", logq=True, published={}, target="")
BEST_RETRIEVAL = RetrievalConfig(
    name="best-retrieval",
    query_ids=USER_IDS,
    query_time=True,
    candidate_genres=True,
    candidate_year=True,
    hidden_layers=(64,),
    output_dim=32,
    optimizer="adam",
    learning_rate=0.01,
    batch_size=2048,
    epochs=6,
    logq=True,
    target="top100 >= 0.30",
)
DCN = RankingConfig(name="dcn-published", published={"rmse": 0.9326, "rmse_std": 0.0015}, target="rmse <= 0.925")
DNN = replace(DCN, name="dnn-published", cross_layers=0, published={"rmse": 0.9350}, target="")
TARGET_STATS = ("user_mean", "movie_mean", "user_count", "movie_count")
DCN_BEST = replace(
    DCN,
    name="dcn-best",
    genres=True,
    numeric=("release_year", *TARGET_STATS),
    cross_layers=2,
    batch_size=1024,
    learning_rate=0.002,
    cosine_decay=True,
    epochs=10,
    published={},
)
DNN_BEST = replace(DCN_BEST, name="dnn-best", cross_layers=0, target="")


# --- data and inputs ------------------------------------------------------------------------------


def standardise(values, reference):
    import numpy as np

    values = np.asarray(values, dtype="float64")
    reference = np.asarray(reference, dtype="float64")
    mean, std = np.nanmean(reference), np.nanstd(reference)
    return np.nan_to_num((values - mean) / (std or 1.0), nan=0.0).astype("float32")[:, None]


def rating_inputs(frame, train_rows, folds: int = 5) -> dict:
    """Every input any configuration reads, as numpy arrays. Numeric features are standardised
    with the statistics of the training rows; the per-user and per-movie rating statistics come
    from the training rows, out of fold for the training rows themselves."""
    import numpy as np

    from lakecart.training.inputs import pad_sequences
    from lakecart.training.movielens import out_of_fold_means, smoothed_means

    fit = frame.iloc[train_rows]

    inputs = {key: frame[key].astype(str).to_numpy() for key in ("movie_title", "movie_id", *USER_IDS)}
    inputs["movie_genres"] = pad_sequences(frame["movie_genres"].tolist(), GENRES_LENGTH)
    inputs["timestamp"] = standardise(frame["timestamp"], fit["timestamp"])
    inputs["release_year"] = standardise(frame["release_year"], fit["release_year"])
    inputs["user_rating"] = frame["user_rating"].to_numpy(dtype="float32")
    labels = inputs["user_rating"][train_rows]
    fold = np.random.default_rng(0).integers(0, folds, len(train_rows))
    for key, prefix in (("user_id", "user"), ("movie_id", "movie")):
        means, counts = smoothed_means(inputs[key][train_rows], labels, inputs[key])
        means[train_rows], counts[train_rows] = out_of_fold_means(inputs[key][train_rows], labels, fold)
        inputs[f"{prefix}_mean"] = standardise(means, means[train_rows])
        inputs[f"{prefix}_count"] = standardise(np.log1p(counts), np.log1p(counts[train_rows]))
    return {key: np.asarray(value) for key, value in inputs.items()}


def movie_inputs(movies, fit) -> dict:
    from lakecart.training.inputs import pad_sequences

    return {
        "movie_title": movies["movie_title"].astype(str).to_numpy(),
        "movie_id": movies["movie_id"].astype(str).to_numpy(),
        "movie_genres": pad_sequences(movies["movie_genres"].tolist(), GENRES_LENGTH),
        "release_year": standardise(movies["release_year"], fit["release_year"]),
    }


def take(inputs: dict, rows) -> dict:
    return {key: value[rows] for key, value in inputs.items()}


def vocabularies(ratings, movies) -> dict:
    """Vocabularies over all ratings, as the tutorials build them (ids only, no labels)."""
    from lakecart.training.inputs import vocabulary

    vocab = {key: vocabulary(ratings[key].astype(str)) for key in ("movie_id", *USER_IDS)}
    vocab["movie_title"] = vocabulary(movies["movie_title"])
    vocab["movie_genres"] = vocabulary(movies["movie_genres"])
    return vocab


def dataset(inputs: dict, keys, batch_size: int, seed: int | None):
    """A cached ``tf.data`` pipeline of the given inputs; shuffled once with ``seed`` (the
    tutorials' ``shuffle(100_000).batch(b).cache()``: the same order every epoch)."""
    import numpy as np
    import tensorflow as tf

    n = len(next(iter(inputs.values())))
    order = np.random.default_rng(seed).permutation(n) if seed is not None else np.arange(n)
    return tf.data.Dataset.from_tensor_slices({key: inputs[key][order] for key in keys}).batch(batch_size).cache()


def optimizer(name: str, learning_rate):
    import tensorflow as tf

    if name == "adagrad":
        return tf.keras.optimizers.legacy.Adagrad(learning_rate)
    if name == "adam":
        return tf.keras.optimizers.legacy.Adam(learning_rate)
    raise ValueError(name)


class Progress:
    """A Keras callback printing the loss every ``every`` epochs (and the last)."""

    def __new__(cls, label: str, epochs: int, every: int):
        import tensorflow as tf

        class _Progress(tf.keras.callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):
                if (epoch + 1) % every == 0 or epoch + 1 == epochs:
                    print(f"    {label} epoch {epoch + 1}/{epochs} loss {logs['loss']:.4g}", flush=True)

        return _Progress()


# --- retrieval ------------------------------------------------------------------------------------


def retrieval_specs(config: RetrievalConfig, vocab: dict):
    from lakecart.training.inputs import TowerSpec

    common = {
        "embedding_dim": config.embedding_dim,
        "hidden_layers": config.hidden_layers,
        "output_dim": config.output_dim,
    }
    query = TowerSpec(
        ids={key: vocab[key] for key in config.query_ids},
        numeric="timestamp" if config.query_time else None,
        n_numeric=1 if config.query_time else 0,
        **common,
    )
    candidate = TowerSpec(
        ids={key: vocab[key] for key in config.candidate_ids},
        sequences={"movie_genres": vocab["movie_genres"]} if config.candidate_genres else {},
        numeric="release_year" if config.candidate_year else None,
        n_numeric=1 if config.candidate_year else 0,
        **common,
    )
    return query, candidate


def spec_keys(spec) -> list[str]:
    return [*spec.ids, *spec.sequences, *([spec.numeric] if spec.numeric else [])]


def run_retrieval(config: RetrievalConfig, seed: int, data: dict) -> dict:
    import numpy as np
    import tensorflow as tf

    from lakecart.training.evaluate import recall_at_k
    from lakecart.training.retrieval import TwoTowerRetrieval, candidate_probability, embed

    tf.keras.utils.set_random_seed(seed)
    query, candidate = retrieval_specs(config, data["vocab"])
    train = dict(data["train"])
    keys = spec_keys(query) + spec_keys(candidate)
    if config.logq:
        train["candidate_probability"] = candidate_probability(train["movie_title"])
        keys.append("candidate_probability")
    model = TwoTowerRetrieval(query, candidate, temperature=config.temperature)
    model.compile(optimizer=optimizer(config.optimizer, config.learning_rate))
    started = time.perf_counter()
    model.fit(
        dataset(train, sorted(set(keys)), config.batch_size, seed),
        epochs=config.epochs,
        verbose=0,
        callbacks=[Progress(f"{config.name} seed {seed}", config.epochs, max(1, config.epochs // 4))],
    )
    seconds = time.perf_counter() - started
    movies = data["movies"]
    candidates = embed(model.candidate_model, {key: movies[key] for key in spec_keys(candidate)})
    evaluation = data["eval"]
    queries = embed(model.query_model, {key: evaluation[key] for key in spec_keys(query)})
    true_index = np.searchsorted(movies["movie_title"], evaluation["movie_title"])
    assert (movies["movie_title"][true_index] == evaluation["movie_title"]).all()
    recall = recall_at_k(queries @ candidates.T, true_index, KS)
    return {"seed": seed, **{f"top{k}": round(recall[f"recall@{k}"], 4) for k in KS}, "train_s": round(seconds, 1)}


def run_popularity(data: dict) -> dict:
    import numpy as np

    from lakecart.training.evaluate import popularity_scores, recall_at_k

    titles = data["movies"]["movie_title"]
    train_index = np.searchsorted(titles, data["train"]["movie_title"])
    true_index = np.searchsorted(titles, data["eval"]["movie_title"])
    scores = popularity_scores(train_index, len(titles), len(true_index))
    recall = recall_at_k(scores, true_index, KS)
    return {"seed": None, **{f"top{k}": round(recall[f"recall@{k}"], 4) for k in KS}, "train_s": 0.0}


# --- ranking --------------------------------------------------------------------------------------


def ranking_spec(config: RankingConfig, vocab: dict):
    from lakecart.training.inputs import TowerSpec

    return TowerSpec(
        ids={key: vocab[key] for key in config.ids},
        sequences={"movie_genres": vocab["movie_genres"]} if config.genres else {},
        numeric="ranking_numeric" if config.numeric else None,
        n_numeric=len(config.numeric),
        embedding_dim=config.embedding_dim,
    )


def with_ranking_numeric(inputs: dict, config: RankingConfig) -> dict:
    import numpy as np

    if not config.numeric:
        return inputs
    return {**inputs, "ranking_numeric": np.concatenate([inputs[key] for key in config.numeric], axis=1)}


def run_ranking(config: RankingConfig, seed: int, data: dict) -> dict:
    import numpy as np
    import tensorflow as tf

    from lakecart.training.ranking import DCNRanking

    tf.keras.utils.set_random_seed(seed)
    spec = ranking_spec(config, data["vocab"])
    keys = [*spec_keys(spec), "user_rating"]
    train = with_ranking_numeric(data["train"], config)
    steps = -(-len(train["user_rating"]) // config.batch_size) * config.epochs
    learning_rate = (
        tf.keras.optimizers.schedules.CosineDecay(config.learning_rate, decay_steps=steps)
        if config.cosine_decay
        else config.learning_rate
    )
    model = DCNRanking(
        spec,
        cross_layers=config.cross_layers,
        deep_layers=config.deep_layers,
        projection_dim=config.projection_dim,
        label="user_rating",
    )
    model.compile(optimizer=tf.keras.optimizers.Adam(learning_rate))
    started = time.perf_counter()
    model.fit(
        dataset(train, keys, config.batch_size, seed),
        epochs=config.epochs,
        verbose=0,
        callbacks=[Progress(f"{config.name} seed {seed}", config.epochs, max(1, config.epochs // 2))],
    )
    seconds = time.perf_counter() - started
    evaluation = with_ranking_numeric(data["eval"], config)
    predictions = model.predict(dataset(evaluation, spec_keys(spec), 4096, None), verbose=0)[:, 0]
    rmse = float(np.sqrt(np.mean((predictions - evaluation["user_rating"]) ** 2)))
    return {"seed": seed, "rmse": round(rmse, 4), "train_s": round(seconds, 1), "_predictions": predictions}


# --- report ---------------------------------------------------------------------------------------


def summarise(kind: str, config, runs: list[dict]) -> dict:
    if kind == "ranking":
        values = [r["rmse"] for r in runs]
        summary = {
            "rmse_mean": round(statistics.fmean(values), 4),
            "rmse_std": round(statistics.stdev(values), 4) if len(values) > 1 else 0.0,
        }
    else:
        summary = {f"top{k}_median": round(statistics.median(r[f"top{k}"] for r in runs), 4) for k in KS}
    params = asdict(config) if config is not None else {}
    params.pop("published", None)
    params.pop("target", None)
    return {
        "config": config.name if config is not None else "popularity",
        "task": kind,
        **summary,
        "runs": runs,
        "published": getattr(config, "published", {}),
        "target": getattr(config, "target", ""),
        "params": params,
    }


def table(rows: list[dict], split: str) -> str:
    lines = [
        f"| configuration | metric ({split}) | ours | each run | published | target |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        if row["task"] == "ranking":
            each = ", ".join(f"{r['rmse']:.4f}" for r in row["runs"])
            published = row["published"]
            pub = f"{published.get('rmse', '')}" + (f" +- {published['rmse_std']}" if "rmse_std" in published else "")
            ours = f"{row['rmse_mean']:.4f} +- {row['rmse_std']:.4f}"
            lines.append(f"| {row['config']} | RMSE | {ours} | {each} | {pub} | {row['target']} |")
            if "ensemble_rmse" in row:
                lines.append(
                    f"| {row['config']}, mean of the {len(row['runs'])} runs' predictions | RMSE | "
                    f"{row['ensemble_rmse']:.4f} | | | |"
                )
        else:
            for k in KS:
                each = ", ".join(f"{r[f'top{k}']:.4f}" for r in row["runs"])
                pub = row["published"].get(f"top{k}", "")
                target = row["target"] if k == 100 else ""
                lines.append(
                    f"| {row['config']} | top-{k} accuracy | {row[f'top{k}_median']:.4f} | {each} | {pub} | {target} |"
                )
    return "\n".join(lines)


def plot(rows: list[dict], path: Path, split: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    retrieval = [r for r in rows if r["task"] == "retrieval"]
    ranking = [r for r in rows if r["task"] == "ranking"]
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.8))
    ax = axes[0]
    width = 0.8 / (len(retrieval) + 1)
    x = np.arange(len(KS))
    for i, row in enumerate(retrieval):
        values = [row[f"top{k}_median"] for k in KS]
        ax.bar(x + i * width, values, width, label=f"{row['config']} (ours)")
    published = [BASIC.published[f"top{k}"] for k in KS]
    ax.bar(x + len(retrieval) * width, published, width, label="basic-retrieval (published)", color="grey")
    ax.axhline(0.30, color="red", linestyle="--", linewidth=1, label="best target top-100 >= 0.30")
    ax.set_xticks(x + width * len(retrieval) / 2, [f"top-{k}" for k in KS])
    ax.set_ylabel(f"top-k accuracy ({split}, median over seeds)")
    ax.set_title("Retrieval over the full catalogue (1,664 titles)")
    ax.legend(fontsize=8)
    ax = axes[1]
    names = [r["config"] for r in ranking]
    x = np.arange(len(names))
    ax.bar(
        x - 0.2,
        [r["rmse_mean"] for r in ranking],
        0.4,
        yerr=[r["rmse_std"] for r in ranking],
        capsize=3,
        label="ours (mean +- std)",
    )
    ax.bar(x + 0.2, [r["published"].get("rmse", np.nan) for r in ranking], 0.4, color="grey", label="published")
    ax.scatter(
        x - 0.2,
        [r.get("ensemble_rmse", np.nan) for r in ranking],
        marker="x",
        color="black",
        zorder=3,
        label="mean of the runs' predictions",
    )
    ax.axhline(0.925, color="red", linestyle="--", linewidth=1, label="target <= 0.925")
    low = min([r["rmse_mean"] - r["rmse_std"] for r in ranking] + [0.925], default=0.9)
    high = max([r["rmse_mean"] + r["rmse_std"] for r in ranking] + [r["published"].get("rmse", 0) for r in ranking])
    ax.set_ylim(low - 0.02, high + 0.01)
    ax.set_xticks(x, names, fontsize=8)
    ax.set_ylabel(f"RMSE ({split})")
    ax.set_title("Rating prediction (DCN / DNN)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# --- main -----------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smoke run: 1 epoch, 1 seed, 2 ranking runs")
    parser.add_argument(
        "--cache",
        default=str(REPO / "data" / "_sources" / "movielens-100k"),
        help="where the recbole wheel is downloaded to (default: data/_sources/movielens-100k)",
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 43, 44], help="retrieval seeds")
    parser.add_argument("--ranking-runs", type=int, default=5, help="runs (seeds 42, 43, ...) per ranking model")
    parser.add_argument(
        "--only",
        nargs="+",
        help="configurations to run (default all): popularity basic-retrieval basic-retrieval+logq "
        "best-retrieval dcn-published dnn-published dcn-best dnn-best",
    )
    parser.add_argument(
        "--validation",
        action="store_true",
        help="tuning mode: fit on the first 72,000 training ratings, score the last 8,000; test is not read",
    )
    parser.add_argument(
        "--split-seed",
        type=int,
        default=42,
        help="seed of the 80/20 shuffle (42: the protocol; others only to measure how much the split moves a number)",
    )
    parser.add_argument("--out", default=str(REPO / "bench-results"), help="folder for movielens.jsonl and .png")
    args = parser.parse_args()

    import numpy as np
    import tensorflow as tf

    from lakecart.training.movielens import load_movielens_100k, tutorial_split, validation_split

    tf.get_logger().setLevel("ERROR")
    started = time.perf_counter()
    ratings, movies = load_movielens_100k(Path(args.cache))
    train_rows, test_rows = tutorial_split(len(ratings), seed=args.split_seed)
    split = "test"
    if args.validation:
        train_rows, test_rows = validation_split(train_rows, 0.1)
        split = "validation"
    fit = ratings.iloc[train_rows]
    everything = rating_inputs(ratings, train_rows)
    data = {
        "vocab": vocabularies(ratings, movies),
        "train": take(everything, train_rows),
        "eval": take(everything, test_rows),
        "movies": movie_inputs(movies, fit),
    }
    print(
        f"MovieLens-100K: {len(ratings):,} ratings, {len(movies):,} titles; train {len(train_rows):,}, "
        f"{split} {len(test_rows):,} (loaded in {time.perf_counter() - started:.1f} s)",
        flush=True,
    )

    seeds = args.seeds[:1] if args.quick else args.seeds
    ranking_seeds = list(range(42, 42 + (2 if args.quick else args.ranking_runs)))
    configs: list[tuple[str, object]] = [
        ("popularity", None),
        ("retrieval", BASIC),
        ("retrieval", BASIC_LOGQ),
        ("retrieval", BEST_RETRIEVAL),
        ("ranking", DCN),
        ("ranking", DNN),
        ("ranking", DCN_BEST),
        ("ranking", DNN_BEST),
    ]
    rows = []
    for kind, config in configs:
        name = config.name if config is not None else "popularity"
        if args.only and name not in args.only:
            continue
        if args.quick and config is not None:
            config = replace(config, epochs=1)
        print(f"== {name}", flush=True)
        t0 = time.perf_counter()
        if kind == "popularity":
            runs = [run_popularity(data)]
            row = summarise("retrieval", None, runs)
        else:
            runner = run_ranking if kind == "ranking" else run_retrieval
            runs, predictions = [], []
            for seed in ranking_seeds if kind == "ranking" else seeds:
                runs.append(runner(config, seed, data))
                if "_predictions" in runs[-1]:
                    predictions.append(runs[-1].pop("_predictions"))
                print(f"  {json.dumps(runs[-1])}", flush=True)
            row = summarise(kind, config, runs)
            if len(predictions) > 1:
                # Not a target number: one model, the average of the runs' predictions.
                error = np.mean(predictions, axis=0) - data["eval"]["user_rating"]
                row["ensemble_rmse"] = round(float(np.sqrt(np.mean(error**2))), 4)
        row["seconds"] = round(time.perf_counter() - t0, 1)
        rows.append(row)
        print(f"  {name} done in {row['seconds']} s", flush=True)

    wall = round(time.perf_counter() - started, 1)
    machine = f"{platform.node()} {os.cpu_count()} cores, {platform.platform()}"
    date = datetime.now(UTC).date().isoformat()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with (out / "movielens.jsonl").open("a") as sink:
        for row in rows:
            line = {"benchmark": "movielens", "split": split, "split_seed": args.split_seed, "quick": args.quick, **row}
            sink.write(json.dumps({**line, "wall_s": wall, "machine": machine, "date": date}) + "\n")
    print()
    print(table(rows, split))
    if any(r["task"] == "ranking" for r in rows) and any(r["task"] == "retrieval" for r in rows):
        suffix = ("" if split == "test" else f"-{split}") + (
            "" if args.split_seed == 42 else f"-split{args.split_seed}"
        )
        plot(rows, out / f"movielens{suffix}.png", split)
    print(f"\nwall time {wall} s; results appended to {out / 'movielens.jsonl'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
