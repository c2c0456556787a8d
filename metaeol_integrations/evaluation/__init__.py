"""SentEval-protocol evaluation: data readers, samples, the embedding cache, STS and transfer scoring, sweeps."""

from metaeol_integrations.evaluation.data import STS_TASKS, TRANSFER_TASKS, read_sts, read_transfer, resolve_data_dir
from metaeol_integrations.evaluation.encoders import Encoder, MetaEOLEncoder, SentenceTransformerEncoder, build_encoder
from metaeol_integrations.evaluation.evaluator import EvalConfig, Evaluator, TaskResult, View

__all__ = [
    "STS_TASKS", "TRANSFER_TASKS", "read_sts", "read_transfer", "resolve_data_dir", "Encoder", "MetaEOLEncoder",
    "SentenceTransformerEncoder", "build_encoder", "EvalConfig", "Evaluator", "TaskResult", "View",
]
