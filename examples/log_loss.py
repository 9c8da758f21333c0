"""Log a falling loss to Herald with the wandb SDK, as in the README's quickstart.

Usage: WANDB_BASE_URL=http://127.0.0.1:8080 WANDB_API_KEY=<key> python3 examples/log_loss.py
"""

import wandb

run = wandb.init(entity="ml", project="demo", name="exp-1")
for loss in [1.0, 0.5, 0.3, 0.1, 0.05, 0.02, 0.01]:
    run.log({"loss": loss})
run.finish()
