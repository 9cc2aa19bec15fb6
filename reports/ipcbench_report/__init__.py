"""ipcbench's report tool: HTML/Markdown/CSV reports and run comparison over
the suite's JSON result files (docs/result.schema.json).

Entry points: scripts/report and scripts/compare, or
PYTHONPATH=reports /usr/bin/python3 -m ipcbench_report {report,compare,merge}.
"""

__version__ = "1.0.0"
