"""S → image for the reference Generator, split into one step per style layer so a render can
resume at any layer from cached activations. Used by `directions`, where every perturbed channel
shares everything before its layer with the unperturbed image.

Same maths as `stylegan2.Generator.forward_styles`, with the export's non-fused modulated conv:
one big conv for the whole batch instead of a grouped conv with a weight copy per sample.
"""

from __future__ import annotations

from styleclip_toolkit.export import modulated_conv_fast as modulated_conv


class SynthesisSteps:
    """The generator's synthesis as a list of steps in styleLayout order.

    A state is (x, skip): the feature map and the RGB skip (None before to_rgb1)."""

    def __init__(self, gen):
        self.gen = gen
        self.steps = [(gen.conv1, 0), (gen.to_rgb1, None)]
        for k, to_rgb in enumerate(gen.to_rgbs):
            self.steps += [(gen.convs[2 * k], 2 * k + 1), (gen.convs[2 * k + 1], 2 * k + 2), (to_rgb, None)]

    def initial_state(self, batch):
        return self.gen.input(batch), None

    def step(self, j, state, style):
        layer, noise_index = self.steps[j]
        x, skip = state
        if noise_index is None:  # toRGB: 1×1 modulated conv (no demod) + bias + upsampled skip
            rgb = modulated_conv(layer.conv, x, style) + layer.bias
            return x, rgb if skip is None else rgb + layer.upsample(skip)
        out = layer.noise(modulated_conv(layer.conv, x, style), self.gen.noise(noise_index))
        return layer.activate(out), skip

    def run(self, styles, start=0, state=None):
        """Renders from step `start` (state = the cached input of that step) to the image."""
        if state is None:
            state = self.initial_state(styles[start].shape[0])
        for j in range(start, len(self.steps)):
            state = self.step(j, state, styles[j])
        return state[1]
