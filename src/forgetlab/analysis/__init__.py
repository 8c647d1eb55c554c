"""Study A's analyses as pure functions of already-measured numbers (numpy, scipy, scikit-learn only).

Nothing here loads a model or touches files: the pipeline hands in accuracies, confidences, hidden states
and trajectories, and gets back plain JSON-serialisable Python values (floats, ints, lists, dicts, with
None wherever a statistic is undefined). :mod:`~forgetlab.stats` holds the correlation and AUC
helpers with bootstrap intervals; :mod:`~forgetlab.analysis.predictors` asks whether difficulty,
confidence or hidden-state variance predict forgetting (across tasks and across items);
:mod:`~forgetlab.analysis.probes` fits linear probes on hidden states ("forgetting is shallow");
:mod:`~forgetlab.analysis.order` relates the step at which items are learned to the step at which they are
forgotten; :mod:`~forgetlab.analysis.cross_task` builds, clusters (UPGMA) and decomposes the cross-task
forget-ratio matrix.
"""
