"""Phase 2's schedule mechanics on a real (randomly initialised) Inception-v3 at 75x75: gradual unfreezing,
discriminative learning rates, trainable BatchNorm, and the image model that augments on the fly."""

import keras
import numpy as np
import pytest

from conftest import NARROW_WEIGHTS
from inceptune.models.backbone import block_layers, build_backbone
from inceptune.models.classifier import build_classifier
from inceptune.models.weights import resolve_weights
from inceptune.training.augment import build_augmenter
from inceptune.vocabulary.policies import resolve_policy
from inceptune.training.unfreezing import BlockRateAdam, GradualUnfreezing, Unfreezing


@pytest.fixture(scope="module")
def classifier():
    keras.utils.set_random_seed(0)
    return build_classifier(build_backbone(resolve_weights(str(NARROW_WEIGHTS)), 75), 2, 75)


def _kernel(backbone, block):
    """The first convolution kernel of `block`."""
    return next(layer for layer in block_layers(backbone, block) if isinstance(layer, keras.layers.Conv2D)).kernel


def _bn(backbone, block):
    return next(layer for layer in block_layers(backbone, block)
                if isinstance(layer, keras.layers.BatchNormalization))


def _activations(model, n=16):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, *model.input.shape[1:])).astype("float32")
    return np.abs(x), rng.integers(0, 2, size=(n, 1)).astype("float32")


def test_gradual_unfreezing_trains_the_top_block_first_then_one_more(classifier):
    backbone = classifier.backbone
    unfreezing = Unfreezing(backbone, "mixed9", every=1)
    assert unfreezing.blocks == ["mixed10", "mixed9"]
    assert [unfreezing.block_at(e) for e in range(4)] == ["mixed10", "mixed9", "mixed9", "mixed9"]
    unfreezing.apply("mixed9")
    model = classifier.top_model("mixed9")
    model.compile(optimizer=unfreezing.optimizer(1e-2), loss="binary_crossentropy")
    model.optimizer.build(model.trainable_variables)  # every variable the phase will train
    unfreezing.apply(unfreezing.block_at(0))
    snapshots = []
    record = keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: snapshots.append(
        {b: np.array(_kernel(backbone, b)) for b in ("mixed9", "mixed10")}))
    start = {b: np.array(_kernel(backbone, b)) for b in ("mixed9", "mixed10")}
    model.fit(*_activations(model), epochs=2, batch_size=8, verbose=0,
              callbacks=[GradualUnfreezing(unfreezing, "mixed10"), record])
    after_first, after_second = snapshots
    assert np.abs(after_first["mixed10"] - start["mixed10"]).max() > 0  # trained from epoch 1
    np.testing.assert_array_equal(after_first["mixed9"], start["mixed9"])  # frozen during epoch 1
    assert np.abs(after_second["mixed9"] - after_first["mixed9"]).max() > 0  # unfrozen at epoch 2
    assert all(not layer.trainable for layer in block_layers(backbone, "mixed9")
               if isinstance(layer, keras.layers.BatchNormalization))  # BatchNorm stays in inference mode


def test_discriminative_rates_scale_each_blocks_step():
    # Adam's first step is the learning rate times the gradient's sign, so the step shows the factor exactly.
    inputs = keras.Input((4,))
    first, second = keras.layers.Dense(3, name="first"), keras.layers.Dense(1, name="second")
    model = keras.Model(inputs, second(first(inputs)))
    optimizer = BlockRateAdam({id(first.kernel): 0.25}, learning_rate=0.1, epsilon=1e-12)
    model.compile(optimizer=optimizer, loss="mse")
    before = [np.array(first.kernel), np.array(second.kernel)]
    rng = np.random.default_rng(1)
    model.train_on_batch(rng.normal(size=(8, 4)).astype("float32"), rng.normal(size=(8, 1)).astype("float32"))
    np.testing.assert_allclose(np.abs(np.array(first.kernel) - before[0]), 0.025, rtol=1e-3)
    np.testing.assert_allclose(np.abs(np.array(second.kernel) - before[1]), 0.1, rtol=1e-3)


def test_block_rate_factors_halve_per_block_below_the_top(classifier):
    backbone = classifier.backbone
    factors = Unfreezing(backbone, "mixed8", rate_decay=0.5).rate_factors()
    assert factors[id(_kernel(backbone, "mixed10"))] == 1.0
    assert factors[id(_kernel(backbone, "mixed9"))] == 0.5
    assert factors[id(_kernel(backbone, "mixed8"))] == 0.25
    assert id(classifier.head[-1].kernel) not in factors  # the head trains at the full rate
    assert Unfreezing(backbone, "mixed8").rate_factors() == {}  # 1: plain Adam


@pytest.mark.parametrize("train_batchnorm", [False, True])
def test_batchnorm_trains_only_when_asked(classifier, train_batchnorm):
    backbone = classifier.backbone
    unfreezing = Unfreezing(backbone, "mixed10", train_batchnorm=train_batchnorm)
    unfreezing.apply("mixed10")
    model = classifier.top_model("mixed10", train_batchnorm)
    model.compile(optimizer="adam", loss="binary_crossentropy")
    bn = _bn(backbone, "mixed10")
    mean, beta = np.array(bn.moving_mean), np.array(bn.beta)  # Inception's BatchNorm has no gamma
    model.fit(*_activations(model), epochs=1, batch_size=8, verbose=0)
    changed = np.abs(np.array(bn.moving_mean) - mean).max() > 0 and np.abs(np.array(bn.beta) - beta).max() > 0
    assert changed == train_batchnorm
    assert _bn(backbone, "mixed9").trainable is False  # below the unfrozen block: frozen either way


def test_the_image_model_is_the_saved_network_behind_an_augmentation(classifier):
    augment = build_augmenter(resolve_policy("default"), seed=3)
    model = classifier.image_model(augment)
    images = np.random.default_rng(2).uniform(0, 255, size=(4, 75, 75, 3)).astype("float32")
    plain = model(images, training=False)
    np.testing.assert_allclose(plain, classifier.model(images, training=False), atol=1e-5)
    assert np.abs(np.array(model(images, training=True)) - np.array(plain)).max() > 1e-4  # augmented in training
    assert {w.path for w in classifier.model.weights} <= {w.path for w in model.weights}  # same variables
