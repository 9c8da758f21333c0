"""Log one run to Herald with the unmodified wandb SDK.

Point the SDK at Herald with WANDB_BASE_URL and WANDB_API_KEY, then run for example:

    python log_run.py --entity vision --project e2e --id run00001 --values 0.9,0.5,nan,inf,0.1

The script logs one `loss` value per step ("nan", "inf" and "-inf" become float values),
sets a summary field and finishes with the given exit code. It prints a JSON line with
the run's id, entity, project and local directory, so a caller can check Herald's stored
state and the SDK's `debug-internal.log`. `wandb.init` failures are printed with their
exception type and the script exits with status 3.
"""

import argparse
import json
import sys
import time

import wandb


def parse_values(text: str) -> list[float]:
    """Parse a comma-separated list of floats, accepting nan, inf and -inf."""
    return [float(item) for item in text.split(",") if item.strip()]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entity", help="entity to log to; the SDK's default entity when omitted")
    parser.add_argument("--project", default="herald-e2e", help="project name")
    parser.add_argument("--id", dest="run_id", help="run id; the SDK generates one when omitted")
    parser.add_argument("--resume", help="wandb.init resume mode: allow, must or never")
    parser.add_argument("--values", default="0.9,0.7,nan,inf,0.3", help="comma-separated loss values")
    parser.add_argument("--exit-code", type=int, default=0, help="exit code passed to run.finish")
    parser.add_argument("--dir", default=None, help="directory for the SDK's local files")
    parser.add_argument("--init-timeout", type=float, default=60, help="seconds wandb.init may take")
    parser.add_argument("--sleep", type=float, default=0, help="seconds to wait before finishing")
    args = parser.parse_args()

    started = time.monotonic()
    try:
        run = wandb.init(
            entity=args.entity,
            project=args.project,
            id=args.run_id,
            resume=args.resume,
            dir=args.dir,
            config={"lr": 0.01, "layers": 3, "note": "herald e2e"},
            tags=["e2e", "herald"],
            notes="logged by log_run.py",
            group="e2e",
            job_type="train",
            settings=wandb.Settings(init_timeout=args.init_timeout),
        )
    except Exception as error:  # noqa: BLE001 - the scenario reports any init failure
        elapsed = time.monotonic() - started
        print(json.dumps({"init_error": type(error).__name__, "message": str(error), "seconds": round(elapsed, 1)}))
        return 3

    for value in parse_values(args.values):
        run.log({"loss": value})
    run.summary["best_loss"] = 0.1
    if args.sleep:
        time.sleep(args.sleep)

    info = {
        "id": run.id,
        "entity": run.entity,
        "project": run.project,
        "dir": run.dir,
        "starting_step": run.starting_step,
        "resumed": run.resumed,
    }
    run.finish(exit_code=args.exit_code)
    print(json.dumps(info))
    return 0


if __name__ == "__main__":
    sys.exit(main())
