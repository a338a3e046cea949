"""The run layer: a run folder's layout (:class:`RunFolder`), running a spec (:func:`run_spec`),
loading a run (:func:`load_run`), sampling from it and comparing runs.

It sits above the builder, training and evaluation (which never import each other) and below the
command line: data flows CLI → runs → build, train, eval.
"""

from revkit.runs.compare import compare
from revkit.runs.folder import RunFolder, choose_run_folder
from revkit.runs.load import Run, load_run
from revkit.runs.run import RunOutcome, run_spec
from revkit.runs.sample import sample_run

__all__ = ["Run", "RunFolder", "RunOutcome", "choose_run_folder", "compare", "load_run", "run_spec", "sample_run"]
