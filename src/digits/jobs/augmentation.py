"""Training-only damage for the CNN, chosen from the robustness report: rotations, blur,
sensor noise and coarse scans, each applied to a random share of every batch.

A Keras layer on [N, 28, 28, 1] floats in [0, 1]: identity at inference, so the exported
graph holds the classifier alone.
"""

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Damage:
    """How much of each kind of damage a training batch gets."""

    rotation_degrees: float = 0.0  # turned by up to this much, either way
    blur_share: float = 0.0  # share of images blurred (3x3 box, once or twice)
    noise_share: float = 0.0  # share of images with Gaussian noise over everything
    noise_stddev: float = 0.0  # its largest standard deviation (0..1 scale)
    coarse_share: float = 0.0  # share of images scanned at 8-14 px and scaled back up

    @property
    def any(self) -> bool:
        return bool(self.rotation_degrees or self.blur_share or self.noise_share
                    or self.coarse_share)


def damage_layer(damage: Damage, seed: int) -> Any:
    """A Keras layer applying ``damage`` in training only."""
    import keras
    import tensorflow as tf

    class RandomDamage(keras.layers.Layer):
        def __init__(self) -> None:
            super().__init__(name="random_damage")
            self.rotate = (keras.layers.RandomRotation(damage.rotation_degrees / 360,
                                                       fill_mode="constant", seed=seed)
                           if damage.rotation_degrees else None)
            self.seeds = keras.random.SeedGenerator(seed)

        def build(self, input_shape: Any) -> None:
            if self.rotate is not None:
                self.rotate.build(input_shape)
            self.built = True

        def _chosen(self, images: Any, share: float) -> Any:
            """A [N, 1, 1, 1] mask picking about ``share`` of the images."""
            draw = keras.random.uniform((tf.shape(images)[0], 1, 1, 1), seed=self.seeds)
            return tf.cast(draw < share, images.dtype)

        def call(self, images: Any, training: bool | None = None) -> Any:
            if not training:
                return images
            if self.rotate is not None:
                images = self.rotate(images, training=True)
            if damage.blur_share:
                blurred = tf.nn.avg_pool2d(images, 3, 1, "SAME")
                twice = tf.nn.avg_pool2d(blurred, 3, 1, "SAME")
                strong = self._chosen(images, 0.5)
                blurred = strong * twice + (1 - strong) * blurred
                chosen = self._chosen(images, damage.blur_share)
                images = chosen * blurred + (1 - chosen) * images
            if damage.coarse_share:
                size = keras.random.randint((), 8, 15, seed=self.seeds)
                coarse = tf.image.resize(tf.image.resize(images, (size, size), "area"),
                                         (28, 28), "bilinear")
                chosen = self._chosen(images, damage.coarse_share)
                images = chosen * coarse + (1 - chosen) * images
            if damage.noise_share:
                scale = keras.random.uniform((tf.shape(images)[0], 1, 1, 1), 0.0,
                                             damage.noise_stddev, seed=self.seeds)
                noisy = images + scale * keras.random.normal(tf.shape(images),
                                                             seed=self.seeds)
                chosen = self._chosen(images, damage.noise_share)
                images = tf.clip_by_value(chosen * noisy + (1 - chosen) * images, 0.0, 1.0)
            return images

    return RandomDamage()
