"""The report of a finished run, the same frame for every experiment.

:mod:`.html` writes it (:func:`~forgetlab.report.html.write_report`: header, the experiment's sections, all
summary values, config, versions); :mod:`.context` is what a section is given (:class:`ReportContext`, the
:data:`Section` type); :mod:`.page` builds the HTML (values that carry their key and exact number, tables,
figures, the self-contained document); :mod:`.plots` holds what every plot shares. Each experiment's own
sections and figures live in its package (``experiments/<name>/report.py``) and are listed on its class
(``report_sections``).
"""
