"""DCL real-sensor realism check: train DCL with the RealSense SR300 "castel" frames as the unpaired real set, then
compare synthesized, real and empirical depth (hole fraction, holes at depth edges, noise against depth).

    python training/evaluate_realism.py --out docs/results/dcl_realism        # writes .json, .md and .png
    python training/evaluate_realism.py --out docs/results/dcl_realism --report-only   # .md from the .json

Config: training/configs/dcl_castel.yaml. The training run lives in --workdir (default
outputs/experiments/realism) and is resumed from its checkpoint when present. Needs `make real-data` (Debian
visp-images-data) and the generated synthetic set outputs/data/syn_train.
"""

from __future__ import annotations

import sys

from dcl_arc_ros.learning.experiments.realism import main

if __name__ == "__main__":
    sys.exit(main())
