"""The paper's command for MANet: `python eval_agent_manet.py with setting={oracle,wild} dataset={davis,ytbvos} method={random,linspace,worst,ours}`."""
from eval_agent import run_with_vos

if __name__ == "__main__":
    run_with_vos("manet")
