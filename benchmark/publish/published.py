"""The papers' published figures, as data: what reports quote beside our numbers and the publishers export.

Paper 001 (Table I) and Schott et al. (the ABS paper) on MNIST; paper 000 reports no accuracies.
"""

from __future__ import annotations

#: Paper 001's budget (MNIST, L∞).
EPS = 0.3
#: Paper 001's model names -> our defenses.
ROWS = {"CNN": "cnn", "Madry": "madry", "Binary ABS": "binary-abs", "Proposed (PGAN-DQN)": "pgan-dqn", "ABS": "abs"}
#: Paper 001, Table I: clean accuracy %, then (F1, accuracy %) under FGSM and DeepFool at ε = 0.3.
PAPER_TABLE_I = {
    "CNN": (99.1, (0.1, 21), (0.09, 0)),
    "Madry": (98.8, (0.48, 89), (0.53, 90)),
    "Binary ABS": (99, (0.49, 85), (0.46, 78)),
    "Proposed (PGAN-DQN)": (98, (0.54, 91), (0.55, 89)),
}
#: Schott et al.: accuracy % under L∞ attacks at ε = 0.3 (their best attack per model).
ABS_PAPER_LINF = {"CNN": 0, "Madry": 87, "ABS": 8, "Binary ABS": 77}
#: Schott et al.: accuracy % under L2 attacks at ε = 1.5 (their best attack per model).
ABS_PAPER_L2 = {"CNN": 8, "Madry": 35, "ABS": 80, "Binary ABS": 39}
#: Schott et al., Table 1: the median L2 size of the smallest adversarial found per point, over all their attacks.
ABS_PAPER_L2_MEDIAN = {"CNN": 1.1, "Madry": 1.4, "ABS": 2.2, "Binary ABS": 1.3}
#: Schott et al.'s L2 budget.
L2_EPS = 1.5
#: Schott et al., Table 1: accuracy % under L0 attacks at ε = 12 changed pixels (their best attack per model).
ABS_PAPER_L0 = {"CNN": 19, "Madry": 0, "ABS": 69, "Binary ABS": 77}
#: Schott et al.'s "binary CNN" (their CNN on the input binarised at 0.5) under the same L0 attacks.
BINARY_CNN_L0 = 38
#: Schott et al.'s L0 budget, in changed pixels.
L0_EPS = 12.0
