"""GAN inversion of point clouds with a pretrained generator as the shape prior (ShapeInversion,
Zhang et al., "Unsupervised 3D Shape Completion through GAN Inversion", CVPR 2021).

* :class:`InvertibleGenerator`: a pretrained l-GAN / tree-GAN as ``G: z -> (B, N, 3)`` with a
  cloud feature net and the latent prior (``InvertibleGenerator.from_checkpoint("pretrained:lgan")``);
* :func:`invert`: fit ``z`` (then ``G``'s weights, per shape) to full or partial clouds;
* modes on top: :func:`reconstruct`, :func:`complete`, :func:`diversity`, :func:`jitter`, :func:`morph`;
* masks (:mod:`pc3d.inversion.masks`): :func:`knn_mask`, :func:`distance_mask`, :func:`voxel_mask`,
  and :func:`masked_chamfer`.

Example::

    >>> from pc3d.inversion import InvertibleGenerator, complete          # doctest: +SKIP
    >>> gen = InvertibleGenerator.from_checkpoint("pretrained:lgan")      # doctest: +SKIP
    >>> res = complete(gen, [partial], mask={"kind": "knn", "k": 8})      # doctest: +SKIP
    >>> res.clouds.shape                                                  # doctest: +SKIP
    torch.Size([1, 2048, 3])

The command line is ``pc3d-invert`` (:mod:`pc3d.cli.invert`).
"""

from pc3d.inversion.generator import InvertibleGenerator, slerp
from pc3d.inversion.invert import (
    DEFAULT_STAGES,
    MODES,
    InversionResult,
    check_mask,
    check_stages,
    complete,
    diversity,
    invert,
    jitter,
    morph,
    objective,
    reconstruct,
    select_starts,
)
from pc3d.inversion.masks import MASK_KINDS, distance_mask, knn_mask, make_mask, masked_chamfer, pad_clouds, voxel_mask

__all__ = ["DEFAULT_STAGES", "MASK_KINDS", "MODES", "InversionResult", "InvertibleGenerator", "check_mask",
           "check_stages", "complete", "distance_mask", "diversity", "invert", "jitter", "knn_mask", "make_mask",
           "masked_chamfer", "morph", "objective", "pad_clouds", "reconstruct", "select_starts", "slerp", "voxel_mask"]
