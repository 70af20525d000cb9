"""robustutils: the library behind robustbook.

Modules by concern: ``data`` (loaders, tensors in [0,1]), ``models`` (normalisation inside),
``attacks`` (PGD, eps in pixel units), ``train`` (one loop for standard and adversarial
training), ``evaluate`` (clean and robust accuracy with the attack settings recorded),
``independent`` (APGD from torchattacks), ``trades``, ``perception`` (gradients and large
perturbations), ``constructed`` (Ilyas et al.'s robust, non-robust and relabelled datasets),
``registry`` (every model and constructed dataset by name, per profile), ``zoo`` (models and
datasets trained once and cached by recipe), ``io`` (checkpoints), ``profiles`` (the sizes of
smoke / ci / colab / full), ``runtime`` (device and seeds), ``toy`` (Tsipras et al. section 2),
``report`` (a page's claims, figures and tables), ``plots``, ``checks`` and ``tradeoff`` (the
studies of chapters 2 and 3); ``launch`` (``python -m robustutils train FILE``, or a registry
name), ``distributed`` (torchrun + DDP), ``resume`` (per-epoch checkpoints) and ``bench`` (the
performance benchmarks).
"""

__version__ = "0.1.0"
