"""The built-in benchmark tasks, with lm-evaluation-harness 0.4.13's default zero-shot prompts.

Templates are copied verbatim from lm-eval's task YAMLs (``lm_eval/tasks/<lm_eval_config>``);
where lm-eval uses Python (``!function``), :mod:`.prompts` re-implements it line for line.
Each spec also says which original files under the data root hold the task (``local``) and
how they map to lm-eval's splits. ``eval_split`` is the split lm-eval reports: ``test`` for ARC,
SciQ, OpenBookQA, LogiQA and MathQA (their YAMLs set ``test_split``), ``validation`` otherwise
(MNLI: ``validation_matched``).

Known prompt differences between local files and the hub data lm-eval downloads:

* WiC: local sentences are space-tokenised ("Room and board ."), HF's are detokenised, so the two
  sentence lines differ in spacing; the quoted word ``sentence1[start1:end1]`` is the same.
* BoolQ train: the local file is the ``google/boolq`` export whose passages lack the
  ``"Title -- "`` prefix that ``aps/super_glue`` passages have (validation is exact).
* HellaSwag: local text is llama.cpp's, already cleaned of ``[title]`` artifacts; ``ctx_a`` and
  ``ctx_b`` are reconstructed (see :func:`forgetlab.data.local.split_hellaswag_context`).
"""

from forgetlab.data.suite import glue, qa
from forgetlab.data.tasks import register_task

for _spec in glue.SPECS + qa.SPECS:
    register_task(_spec)
