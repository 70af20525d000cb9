"""robustutils: the library behind robustbook.

Modules by concern: ``data`` (loaders, tensors in [0,1]), ``models`` (normalisation inside),
``attacks`` (PGD, eps in pixel units), ``train`` (one loop for standard and adversarial
training), ``evaluate`` (clean and robust accuracy with the attack settings recorded),
``independent`` (APGD from torchattacks), ``trades``, ``perception`` (gradients and large
perturbations), ``constructed`` (Ilyas et al.'s robust, non-robust and relabelled datasets),
``zoo`` (models and datasets cached by recipe), ``io`` (checkpoints), ``profiles`` (smoke / ci /
full), ``runtime`` (device and seeds), ``toy`` (Tsipras et al. section 2), ``report`` and ``plots``;
``launch`` (``python -m robustutils.train --config FILE``), ``distributed`` (torchrun + DDP),
``resume`` (per-epoch checkpoints) and ``bench`` (the performance benchmarks).
"""

__version__ = "0.1.0"
