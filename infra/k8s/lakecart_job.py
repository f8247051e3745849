"""The ``lakecart`` command as a Spark application file, for ``spark-submit`` and the spark-operator.

    spark-submit [spark options] infra/k8s/lakecart_job.py ingest silver --date 2026-01-14

runs exactly what ``lakecart ingest silver --date 2026-01-14`` runs (``lakecart.cli:run``, the console
entry point): spark-submit starts the driver JVM, the job's ``get_spark()`` then builds its session in
it with the settings of ``LAKECART_CONFIG`` and ``LAKECART_*``. The exit status is the command's.
"""

import sys

from lakecart.cli import run

if __name__ == "__main__":
    sys.argv[0] = "lakecart"  # usage and error lines name the command, not this file
    run()
