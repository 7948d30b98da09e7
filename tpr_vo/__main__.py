import sys

from tpr_vo.cli import main

if __name__ == "__main__":  # not when a spawned worker process imports it (training batches)
    sys.exit(main())
