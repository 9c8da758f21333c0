"""Log one metric to Herald with the unmodified wandb SDK, then finish the run.

Usage: log_metrics.py ENTITY PROJECT VALUES_JSON [--name DISPLAY_NAME] [--exit-code N]

VALUES_JSON is a JSON array of numbers; NaN and Infinity are allowed, as Python's json
module reads them. The metric name comes from METRIC (default "loss"). WANDB_BASE_URL and
WANDB_API_KEY point the SDK at Herald. On success the script prints one JSON line with the
run's id and display name.
"""

import argparse
import json
import os

import wandb


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("entity")
    parser.add_argument("project")
    parser.add_argument("values")
    parser.add_argument("--name", default=None)
    parser.add_argument("--exit-code", type=int, default=0)
    args = parser.parse_args()

    metric = os.environ.get("METRIC", "loss")
    values = json.loads(args.values)

    run = wandb.init(entity=args.entity, project=args.project, name=args.name)
    for value in values:
        run.log({metric: value})
    run.finish(exit_code=args.exit_code)
    print(json.dumps({"run_id": run.id, "run_name": run.name}), flush=True)


if __name__ == "__main__":
    main()
