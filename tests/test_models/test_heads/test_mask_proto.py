# Copyright (c) OpenMMLab. All rights reserved.
from unittest import TestCase

import torch

import mdqe_mm  # noqa: F401
from mdqe_mm.models.heads import MDQEMaskPrototypeNet


class TestMDQEMaskPrototypeNet(TestCase):

    def test_shapes_and_range(self):
        torch.manual_seed(0)
        net = MDQEMaskPrototypeNet(embed_dims=32, out_norm_groups=4)
        self.assertEqual(net.num_prototypes, 4)  # C // 8
        net = MDQEMaskPrototypeNet(
            embed_dims=32, num_prototypes=8, out_norm_groups=8)
        feats = [
            torch.randn(3, 32, 8, 12),
            torch.randn(3, 32, 4, 6),
            torch.randn(3, 32, 2, 3),
            torch.randn(3, 32, 1, 2)
        ]
        protos = net(feats)
        # stride 8 -> stride 4
        self.assertEqual(tuple(protos.shape), (3, 8, 16, 24))
        self.assertGreaterEqual(float(protos.min()), 0.)  # final ReLU
        self.assertGreater(float(protos.max()), 0.)

    def test_frames_are_independent(self):
        torch.manual_seed(1)
        net = MDQEMaskPrototypeNet(
            embed_dims=32, num_prototypes=8, out_norm_groups=8).eval()
        feats = [
            torch.randn(4, 32, 8, 8),
            torch.randn(4, 32, 4, 4),
            torch.randn(4, 32, 2, 2)
        ]
        together = net(feats)
        for frame in range(4):
            alone = net([f[frame:frame + 1] for f in feats])
            torch.testing.assert_close(alone[0], together[frame])

    def test_reference_group_rule_and_errors(self):
        net = MDQEMaskPrototypeNet(embed_dims=256)
        self.assertEqual(net.num_prototypes, 32)
        self.assertEqual(net.out_lay2.pointwise_conv.gn.num_groups, 32)
        net = MDQEMaskPrototypeNet(embed_dims=192)  # Swin-L: M = 24
        self.assertEqual(net.num_prototypes, 24)
        self.assertEqual(net.out_lay2.pointwise_conv.gn.num_groups, 24)
        self.assertEqual(net.lay1.gn.num_groups, 8)
        with self.assertRaisesRegex(ValueError, 'out_norm_groups'):
            MDQEMaskPrototypeNet(embed_dims=32, num_prototypes=8)
        with self.assertRaisesRegex(ValueError, 'stride 8/16/32'):
            MDQEMaskPrototypeNet(
                embed_dims=32, out_norm_groups=4)([torch.zeros(1, 32, 4, 4)])
