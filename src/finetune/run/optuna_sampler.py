"""``ResumingTPESampler``: Optuna's TPE sampler for a study that may be resumed from its storage.

A seeded sampler restarts its random stream in every process, so rerunning a search against the same
``hydra.sweeper.storage`` proposed exactly the first run's parameters again (trial 3 = trial 0, ...). This one
builds its TPE sampler once it sees the study, seeded with ``seed`` plus the number of trials already finished:
a fresh study samples as plain TPE with ``seed`` does, a resumed one continues with new parameters, still
reproducibly. Torch-free.
"""

from __future__ import annotations

import logging
from typing import Any

import optuna

log = logging.getLogger(__name__)


class ResumingTPESampler(optuna.samplers.BaseSampler):
    """``optuna.samplers.TPESampler(seed=seed + finished trials, **options)``, built at the study's first trial.

    Args:
        seed: the search's seed (None: unseeded).
        **options: ``TPESampler``'s other arguments (``n_startup_trials``, ``multivariate`` ...).
    """

    def __init__(self, seed: int | None = None, **options: Any) -> None:
        self.seed, self.options = seed, options
        self._tpe: optuna.samplers.TPESampler | None = None

    def tpe(self, study: optuna.Study) -> optuna.samplers.TPESampler:
        """The TPE sampler for ``study``, seeded past the trials it already holds."""
        if self._tpe is None:
            done = sum(trial.state.is_finished() for trial in study.get_trials(deepcopy=False))
            if done:
                log.info("study %s resumed: %d trials already done; new trials continue from there",
                         study.study_name, done)  # fmt: skip
            seed = None if self.seed is None else self.seed + done
            self._tpe = optuna.samplers.TPESampler(seed=seed, **self.options)
        return self._tpe

    def infer_relative_search_space(self, study: optuna.Study, trial: Any) -> dict[str, Any]:
        return self.tpe(study).infer_relative_search_space(study, trial)

    def sample_relative(self, study: optuna.Study, trial: Any, search_space: dict[str, Any]) -> dict[str, Any]:
        return self.tpe(study).sample_relative(study, trial, search_space)

    def sample_independent(self, study: optuna.Study, trial: Any, name: str, distribution: Any) -> Any:
        return self.tpe(study).sample_independent(study, trial, name, distribution)

    def before_trial(self, study: optuna.Study, trial: Any) -> None:
        self.tpe(study).before_trial(study, trial)

    def after_trial(self, study: optuna.Study, trial: Any, state: Any, values: Any) -> None:
        self.tpe(study).after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        if self._tpe is not None:
            self._tpe.reseed_rng()
