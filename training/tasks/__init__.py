"""The model tasks the generic trainer runs, by name (``lakecart train <name>``)."""

from lakecart.training.tasks.base import ModelTask
from lakecart.training.tasks.churn import ChurnTask
from lakecart.training.tasks.demand import CategoryDemandTask, DemandTask
from lakecart.training.tasks.ranking import RankingTask
from lakecart.training.tasks.retrieval import RetrievalTask

TASKS: dict[str, type[ModelTask]] = {
    t.name: t for t in (RetrievalTask, RankingTask, ChurnTask, DemandTask, CategoryDemandTask)
}
