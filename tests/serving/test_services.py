"""Feature services serve what the models read."""

from lakecart.features import REGISTRY
from lakecart.features.pit import feature_column
from lakecart.serving.app import rerank_plan
from lakecart.training.tasks.ranking import ITEM_VIEW, USER_VIEW


def test_every_view_the_ranking_model_reads_is_served_online():
    # The ranking model's inputs are named as the point-in-time join names them: <view>__<feature>.
    names = [feature_column(REGISTRY[v], f) for v in (USER_VIEW, ITEM_VIEW) for f in REGISTRY[v].feature_names()]
    plan, missing = rerank_plan(names)
    assert missing == []
    assert {key: [s.name for s in services] for key, services in plan.items()} == {
        "user_id": ["ranking_user"],
        "item_id": ["ranking_item"],
    }
