"""lakecart: a distributed feature and training platform for e-commerce ML.

The top-level folders are the stages of the data flow and install as sub-packages of ``lakecart``:
``jobs/`` -> ``lakecart.jobs``, ``features/`` -> ``lakecart.features``, ``training/`` -> ``lakecart.training``,
``serving/`` -> ``lakecart.serving``.
Pinned environments live in ``requirements/`` and are built by ``infra/bootstrap.sh`` (``make``).
"""

from setuptools import find_packages, setup

STAGES = ("jobs", "features", "training", "serving")

packages = ["lakecart"] + [f"lakecart.{name}" for name in find_packages(include=[f"{stage}*" for stage in STAGES])]

setup(
    name="lakecart",
    version="0.1.0",
    description="Delta Lake feature store and Horovod/TFRS training pipeline for e-commerce ML",
    python_requires=">=3.11,<3.12",
    packages=packages,
    package_dir={f"lakecart.{stage}": stage for stage in STAGES},
    package_data={"lakecart.jobs": ["contracts/*.json"]},
    # Loose ranges only: the exact, tested versions are the lock files in requirements/.
    install_requires=[],
    extras_require={
        "pipeline": [
            "tensorflow==2.15.1",
            "tensorflow-recommenders==0.7.3",
            "pyspark==4.1.1",
            "delta-spark==4.4.0",
            "deltalake==1.6.6",
            "great-expectations[spark]==1.24.1",
            "pandas>=2.2,<3",
            "pyarrow>=18,<22",
            "pydantic>=2,<3",
            "pydantic-settings>=2",
            "pyyaml>=6",
            "matplotlib>=3.8",
        ],
        "gpu": ["tensorflow[and-cuda]==2.15.1"],
        "airflow": ["apache-airflow==3.3.2", "apache-airflow-providers-apache-spark"],
    },
    entry_points={"console_scripts": ["lakecart=lakecart.cli:run"]},
)
