"""The base of every neural model: shared training hyperparameters, one fit, devices, persistence.

A neural model is a :class:`NeuralRecommender` whose subclass supplies four things:

* :meth:`~NeuralRecommender.build_net`: its ``nn.Module`` (built from the config and the vocabulary sizes, also
  when a saved model is loaded);
* :meth:`~NeuralRecommender.training_batches`: the batches of one epoch and how many there are;
* :meth:`~NeuralRecommender.training_loss`: the loss of one batch;
* optionally :meth:`~NeuralRecommender.validation` (the default ranks the validation events: NDCG@10).

Everything else is shared and lives here or in :class:`~attnrec.training.trainer.Trainer`: the hyperparameters
of :class:`NeuralConfig` with the same names and meanings in every model, seeding, the device, checkpoints and
``resume``, early stopping on a metric to maximise or minimise, the training history, saving the weights
(safetensors) and loading them on any device. State is assigned only by a successful fit
(:meth:`attnrec.base.Recommender.fit` restores the model when training raises).
"""

from __future__ import annotations

import dataclasses
from abc import abstractmethod
from typing import Any, ClassVar, Literal, Self

import numpy as np
import torch
from pydantic import Field
from torch import Tensor, nn

from attnrec.base import Recommender
from attnrec.config import ModelConfig
from attnrec.data.interactions import Interactions
from attnrec.training.options import TrainingOptions, resolve_device
from attnrec.training.trainer import BatchFn, LossFn, Trainer, TrainerConfig, TrainResult, ValidateFn, native_bf16


class NeuralConfig(ModelConfig):
    """Training hyperparameters shared by every neural model (same names, same meanings; models change the
    defaults, never the meaning)."""

    lr: float = Field(1e-3, gt=0, description="Peak AdamW learning rate.")
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay (not on biases and norms).")
    batch_size: int = Field(64, ge=1, description="Training examples per step.")
    epochs: int = Field(30, ge=1, description="Maximum training epochs.")
    patience: int = Field(
        0, ge=0, description="Stop after this many validations without improvement (0: never stop early)."
    )
    eval_every: int = Field(1, ge=1, description="Validate every this many epochs (needs validation data).")
    warmup_steps: int = Field(0, ge=0, description="Linear learning-rate warm-up steps.")
    cosine: bool = Field(False, description="Cosine learning-rate decay over all epochs after warm-up.")
    grad_clip: float | None = Field(None, ge=0, description="Clip the global gradient norm (None or 0: off).")
    ema_decay: float | None = Field(
        None,
        gt=0,
        lt=1,
        description="Per-step decay of an exponential moving average of the weights; validation, early "
        "stopping and the fitted model use the average (None: off).",
    )
    bf16: bool | None = Field(
        None,
        description="bfloat16 autocast for training (None: on with a CUDA GPU or a CPU with native bf16, "
        "AVX-512 BF16 or AMX; inference always runs in float32).",
    )
    eval_batch_size: int = Field(512, ge=1, description="Histories or users scored at once at inference.")


def resolved_bf16(config: NeuralConfig, device: torch.device) -> bool:
    """``config.bf16`` with None resolved for ``device``."""
    if config.bf16 is not None:
        return config.bf16
    if device.type == "cuda":
        return bool(torch.cuda.is_bf16_supported())
    return native_bf16()


def tied_names(module: nn.Module) -> dict[str, str]:
    """Parameter names that are another parameter (weight tying) -> the name saved for it."""
    first: dict[int, str] = {}
    tied: dict[str, str] = {}
    for name, param in module.named_parameters(remove_duplicate=False):
        if id(param) in first:
            tied[name] = first[id(param)]
        else:
            first[id(param)] = name
    return tied


class NeuralRecommender(Recommender):
    """Base class of models trained by gradient descent with :class:`~attnrec.training.trainer.Trainer`.

    Class attributes a subclass may change: ``validation_metric`` / ``validation_mode`` (what early stopping
    maximises or minimises) and ``adam_betas``.
    """

    fit_kind = "epochs"
    config_class: ClassVar[type[ModelConfig]] = NeuralConfig
    validation_metric: ClassVar[str] = "ndcg@10"
    validation_mode: ClassVar[Literal["max", "min"]] = "max"
    adam_betas: ClassVar[tuple[float, float]] = (0.9, 0.98)
    config: NeuralConfig

    def __init__(self, config: ModelConfig | dict[str, Any] | None = None, **overrides: Any) -> None:
        super().__init__(config, **overrides)
        self.net_: nn.Module | None = None
        self.device_: torch.device = torch.device("cpu")
        self.history_: list[dict[str, Any]] = []

    # ------------------------------------------------------------------ what a model supplies
    @abstractmethod
    def build_net(self, train: Interactions | None) -> nn.Module:
        """A freshly initialised network for the fitted vocabularies (``self.num_items``, ``self.num_users``);
        ``train`` is ``None`` when a saved model is loaded."""

    @abstractmethod
    def training_batches(self, train: Interactions) -> tuple[BatchFn, int]:
        """``(batches, num_batches)``: ``batches(epoch, generator)`` yields one epoch's batches (tensors, tuples
        or dicts of tensors: the trainer moves them to the device)."""

    @abstractmethod
    def training_loss(self, net: nn.Module, train: Interactions) -> LossFn:
        """``loss_fn(batch, generator)``: the scalar loss of a batch, or ``(loss, examples)``."""

    def validation(self, net: nn.Module, train: Interactions, valid: Interactions | None) -> ValidateFn | None:
        """Validation metrics of the model in training; default: full-ranking NDCG@10 etc. of the next event
        (histories = ``train``); ``None`` without validation data."""
        if valid is None or len(valid) == 0:
            return None
        from attnrec.evaluation import evaluate_interactions

        def validate() -> dict[str, float]:
            result = evaluate_interactions(self, train, valid, ks=(10,), batch_size=self.config.eval_batch_size)
            return {k: v for k, v in result.summary.items() if not k.startswith("coverage")}

        return validate

    def trainer_config(self, device: torch.device) -> TrainerConfig:
        """The shared loop's settings, from the shared fields of the config."""
        c = self.config
        return TrainerConfig(
            lr=c.lr,
            weight_decay=c.weight_decay,
            betas=self.adam_betas,
            epochs=c.epochs,
            patience=c.patience,
            metric=self.validation_metric,
            mode=self.validation_mode,
            eval_every=c.eval_every,
            warmup_steps=c.warmup_steps or 0,  # models with a data rule for these fields resolve None before
            cosine=c.cosine,
            grad_clip=c.grad_clip or None,  # 0: off
            bf16=resolved_bf16(c, device),
            ema_decay=c.ema_decay,
        )

    def training_info(self, train: Interactions) -> dict[str, Any]:
        """Model-specific facts about a fit, added to ``train_info_``."""
        return {}

    def after_fit(self, net: nn.Module) -> None:
        """Hook called with the trained (best) network before the fit returns."""

    # ------------------------------------------------------------------ the shared fit
    def _fit(self, train: Interactions, valid: Interactions | None, options: TrainingOptions) -> None:
        rules = self.data_rules_  # applied by Recommender.fit before this call
        device = options.torch_device()  # cuda:LOCAL_RANK in a multi-process job
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(options.seed)
            net = self.build_net(train)
        net.to(device)
        self.net_, self.device_ = net, device
        batches, num_batches = self.training_batches(train)
        validate = self.validation(net, train, valid)
        trainer_config = self.trainer_config(device)
        options = dataclasses.replace(options, device=str(device))
        result: TrainResult = Trainer(trainer_config, options).fit(
            net,
            batches,
            self.training_loss(net, train),
            num_batches=num_batches,
            validate=validate,
            description=self.name,
        )
        net.eval()
        self.history_ = result.history
        self.train_info_ = {
            "best_epoch": result.best_epoch if validate is not None else result.epochs_run,
            "best_metric": result.best_metric,
            "metric": self.validation_metric if validate is not None else None,
            "epochs_run": result.epochs_run,
            "stopped_early": result.stopped_early,
            "device": str(device),
            "bf16": trainer_config.bf16,
            "data_rules": {k: {"value": v, "why": why} for k, (v, why) in rules.items()},
            **self.training_info(train),
        }
        self.after_fit(net)

    # ------------------------------------------------------------------ devices and inference helpers
    def _net(self) -> nn.Module:
        self._check_fitted()
        if self.net_ is None:
            raise RuntimeError(f"{type(self).__name__} has no network")
        return self.net_

    def to(self, device: str | torch.device) -> Self:
        """Move the network to ``device`` (``"auto"``, ``"cpu"``, ``"cuda[:N]"``); inference runs there."""
        target = resolve_device(device)
        if self.net_ is not None:
            self.net_.to(target)
        self.device_ = target
        return self

    def tensor(self, array: np.ndarray) -> Tensor:
        """A numpy array as a tensor on the model's device."""
        return torch.from_numpy(np.ascontiguousarray(array)).to(self.device_)

    @staticmethod
    def numpy(tensor: Tensor) -> np.ndarray:
        """A float tensor back on the CPU as float32 numpy."""
        return tensor.detach().float().cpu().numpy()

    # ------------------------------------------------------------------ persistence (weights from CPU copies)
    def _get_state(self) -> dict[str, np.ndarray]:
        net = self._net()
        skip = tied_names(net)
        return {k: v.detach().cpu().numpy() for k, v in net.state_dict().items() if k not in skip}

    def _set_state(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        with torch.random.fork_rng(devices=[]):
            net = self.build_net(None)
        state = {k: torch.from_numpy(np.array(v)) for k, v in arrays.items()}
        for name, source in tied_names(net).items():
            if source in state:
                state[name] = state[source]
        net.load_state_dict(state)
        net.eval()
        self.net_, self.device_ = net, torch.device("cpu")
        self.history_ = list(meta.get("history", []))
        self.train_info_ = dict(meta.get("train_info", {}))

    def _get_meta(self) -> dict[str, Any]:
        return {"history": self.history_, "train_info": self.train_info_}


def item_scores_module(embedding: nn.Embedding) -> nn.Linear:
    """An ``nn.Linear`` whose weight *is* ``embedding``'s weight: item scores ``hidden @ E.T`` through a module
    (what per-sample-gradient tools hook), with the input and output item embeddings tied."""
    out, dim = embedding.weight.shape
    head = nn.Linear(dim, out, bias=False, device="meta")
    head.weight = embedding.weight
    return head


__all__ = [
    "NeuralConfig",
    "NeuralRecommender",
    "item_scores_module",
    "resolved_bf16",
    "tied_names",
]
