"""Head `gda`: its parameters (pipeline/heads/gda.py says whose defaults they are), what it reads from
the cache and the encoder parts it runs; torch-free, so that commands list and check them before any model
library loads."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class GDAParams:
    template_set: str = "reference"  # the authors' rule: CoOp's template, the 7-template ensemble on ImageNet
    alpha_grid: tuple[float, float, int] = (-4.0, 2.0, 7)  # log10 (start, stop, steps) of the ensemble weight
    covariance: str = "shrinkage"  # main_few_shots' estimator; 'class_mean': main_base2new's (see the docstring)
    novel_neighbours: int = 64  # base-to-novel: training views nearest each novel class's text (their k)
    novel_text_copies: int = 16  # base-to-novel: copies of the text embedding in the novel class mean (their 16)


PARAMS = GDAParams
REQUIRES = frozenset({"global", "views"})  # Head.requires
RUNS: tuple[str, ...] = ()  # Head.runs: frozen encoder parts run in stage 2
