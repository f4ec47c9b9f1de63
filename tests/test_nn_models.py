"""Scale-invariant networks: shapes, frozen heads, automatic detection of the invariant group."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from sgdthermo.nn.models import (
    DEFAULT_WIDTHS,
    HEAD_NORM_MSE,
    MLP,
    ConvNet,
    PreActResNet18,
    build_model,
    check_scale_invariance,
    count_parameters,
    find_scale_invariant,
    scale_invariant_groups,
    set_si_norm,
    si_norm,
)

SHAPES = {"digits": (1, 8), "cifar": (3, 32)}
SMALL = {"convnet": 4, "resnet18": 2, "mlp": 16}


def batch(c, s, n=24, classes=10, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, c, s, s, generator=g), torch.arange(n) % classes


def trainable(model):
    return [p for p in model.parameters() if p.requires_grad]


def conv_and_linear_weights(model):
    """Weights of every conv / linear layer except the head (for comparison only)."""
    return [m.weight for m in model.modules()
            if isinstance(m, (nn.Conv2d, nn.Linear)) and m is not model.head]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("name", ["convnet", "resnet18", "mlp"])
def test_forward_head_and_invariant_group(name, shape):
    c, s = SHAPES[shape]
    torch.manual_seed(0)
    model = build_model(name, in_channels=c, num_classes=10, width=SMALL[name], image_size=s)
    x, y = batch(c, s)
    out = model(x)
    assert out.shape == (24, 10) and torch.isfinite(out).all()
    # the head: frozen, bias-free, Frobenius norm 10
    assert not model.head.weight.requires_grad and model.head.bias is None
    assert model.head.weight.norm().item() == pytest.approx(10.0, rel=1e-6)
    # found by testing: exactly the conv / hidden linear weights, never the head
    si, other = find_scale_invariant(model, x, y)
    assert other == []
    assert {id(p) for p in si} == {id(p) for p in conv_and_linear_weights(model)}
    assert {id(p) for p in si} == {id(p) for p in trainable(model)}
    assert all(p is not model.head.weight for p in si)
    assert check_scale_invariance(model, si, x, y) < 1e-10
    assert count_parameters(si) == sum(p.numel() for p in trainable(model))


def test_running_stats_untouched_and_rng_not_consumed():
    model = ConvNet(1, 10, width=4)
    x, y = batch(1, 8)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    state = torch.get_rng_state()
    find_scale_invariant(model, x, y)
    check_scale_invariance(model, trainable(model), x, y)
    assert torch.equal(torch.get_rng_state(), state)
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert model.training and next(model.parameters()).dtype == torch.float32


def test_resnet_stream_convs_are_only_jointly_invariant():
    torch.manual_seed(1)
    model = PreActResNet18(1, 10, width=2)
    x, y = batch(1, 8)
    alone, rest = find_scale_invariant(model, x, y, groupwise=False)
    # alone: the first conv of each of the 8 blocks (followed by bn2)
    firsts = [b.conv1.weight for st in (model.layer1, model.layer2, model.layer3, model.layer4)
              for b in st]
    assert {id(p) for p in alone} == {id(p) for p in firsts}
    assert len(rest) == 20 - 8
    # one stream tensor alone changes the loss; the stage-1 stream group does not
    assert check_scale_invariance(model, [model.conv1.weight], x, y) > 1e-3
    stage1 = [model.conv1.weight, model.layer1[0].conv2.weight, model.layer1[1].conv2.weight]
    assert check_scale_invariance(model, stage1, x, y) < 1e-10


def test_paper_parameter_counts_and_defaults():
    assert DEFAULT_WIDTHS == {"convnet": 8, "resnet18": 4, "mlp": 64}
    # paper / reference code: ConvNet k=8 -> 24,408; thin ResNet-18 k=4 -> 43,692
    assert count_parameters(trainable(build_model("convnet", in_channels=3, num_classes=10))) == 24408
    assert count_parameters(trainable(build_model("resnet18", in_channels=3, num_classes=10))) == 43692
    k = 3
    conv = ConvNet(1, 10, width=k)
    assert count_parameters(trainable(conv)) == 9 * (1 * k + 2 * k * k + 8 * k * k + 32 * k * k)
    mlp = MLP(64, 10, hidden=(32, 16))
    assert count_parameters(trainable(mlp)) == 64 * 32 + 32 * 16


def test_non_normalised_model_is_not_invariant():
    torch.manual_seed(0)
    head = nn.Linear(32, 10, bias=False).requires_grad_(False)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 32, bias=False), nn.ReLU(),
                          nn.Linear(32, 32, bias=False), nn.ReLU(), head)
    x, y = batch(1, 8)
    si, other = find_scale_invariant(model, x, y)
    assert si == [] and len(other) == 2
    assert check_scale_invariance(model, trainable(model), x, y) > 1e-2


def test_mixed_model_splits_correctly():
    """BN-normalised weight: invariant; un-normalised layer and affine BN: not; a bias
    right before a BatchNorm has no effect at all and is not counted as invariant."""
    torch.manual_seed(0)
    head = nn.Linear(16, 10, bias=False).requires_grad_(False)
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1, bias=True), nn.BatchNorm2d(4, affine=False), nn.ReLU(),
        nn.Flatten(), nn.Linear(256, 16, bias=False), nn.BatchNorm1d(16, affine=True), nn.ReLU(),
        nn.Linear(16, 16, bias=True), nn.ReLU(), head)
    x, y = batch(1, 8, n=32)
    si, other = find_scale_invariant(model, x, y)
    assert {id(p) for p in si} == {id(model[0].weight), id(model[4].weight)}
    expected_other = [model[0].bias, model[5].weight, model[5].bias, model[7].weight, model[7].bias]
    assert [id(p) for p in other] == [id(p) for p in expected_other]
    assert check_scale_invariance(model, si, x, y) < 1e-10


def test_float32_eps_effect_is_visible_without_override():
    """With the model's own BN eps the invariance is approximate (O(eps/var))."""
    torch.manual_seed(0)
    model = ConvNet(1, 10, width=4)
    x, y = batch(1, 8)
    si = trainable(model)
    set_si_norm(si, 0.05)  # small weights: pre-BN variances comparable to eps
    assert check_scale_invariance(model, si, x, y) < 1e-10
    assert check_scale_invariance(model, si, x, y, norm_eps=None) > 1e-6


def test_head_deterministic_and_mse_norm():
    torch.manual_seed(5)
    a = build_model("convnet", in_channels=1, num_classes=10, width=4, head_norm=HEAD_NORM_MSE)
    torch.manual_seed(5)
    b = build_model("convnet", in_channels=1, num_classes=10, width=4, head_norm=HEAD_NORM_MSE)
    assert torch.equal(a.head.weight, b.head.weight)
    assert a.head.weight.norm().item() == pytest.approx(1.5, rel=1e-6)
    torch.manual_seed(6)
    c = build_model("convnet", in_channels=1, num_classes=10, width=4, head_seed=3)
    torch.manual_seed(7)
    d = build_model("convnet", in_channels=1, num_classes=10, width=4, head_seed=3)
    assert torch.equal(c.head.weight, d.head.weight)
    assert not torch.equal(c.features[0].weight, d.features[0].weight)


def test_si_norm_and_set_si_norm():
    torch.manual_seed(0)
    model = MLP(64, 10, hidden=(8, 8))
    params = trainable(model)
    flat = torch.cat([p.detach().flatten() for p in params])
    assert si_norm(params).item() == pytest.approx(flat.norm().item(), rel=1e-6)
    set_si_norm(params, 1.0)
    assert si_norm(params).item() == pytest.approx(1.0, rel=1e-6)
    new = torch.cat([p.detach().flatten() for p in params])
    assert torch.allclose(new, flat / flat.norm(), atol=1e-7)  # direction kept
    set_si_norm(params, 2.5)
    assert si_norm(params).item() == pytest.approx(2.5, rel=1e-6)
    with pytest.raises(ValueError):
        set_si_norm(params, 0.0)


def test_build_model_errors_and_widths():
    with pytest.raises(ValueError, match="unknown model 'x': expected one of convnet, resnet18, mlp"):
        build_model("x", in_channels=1, num_classes=10)
    with pytest.raises(ValueError, match="image_size"):
        build_model("mlp", in_channels=1, num_classes=10)
    assert build_model("convnet", in_channels=1, num_classes=3).width == 8
    assert build_model("resnet18", in_channels=1, num_classes=3, width=2).width == 2
    assert isinstance(build_model("mlp", in_channels=1, num_classes=3, image_size=8), MLP)


def test_custom_loss_fn():
    torch.manual_seed(0)
    model = build_model("mlp", in_channels=1, num_classes=4, width=8, image_size=8,
                        head_norm=HEAD_NORM_MSE)
    x, y = batch(1, 8, classes=4)

    def mse(logits, labels):
        return F.mse_loss(logits, F.one_hot(labels, logits.shape[1]).to(logits.dtype))

    si, other = find_scale_invariant(model, x, y, mse)
    assert len(si) == 2 and other == []
    assert check_scale_invariance(model, si, x, y, mse) < 1e-10


def test_joint_group_of_a_post_ln_transformer_is_found_after_training_steps():
    """BERT is post-LN: its only scale-invariant set is the three embedding tables together
    (their sum enters a LayerNorm). The greedy pruning alone lost it once the weights had
    moved off their initialisation (the attention's query and key weights trade scale, a
    relation that is not an invariance); the radial-derivative programme finds it."""
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    cfg = transformers.BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                  intermediate_size=64, vocab_size=50, max_position_embeddings=8,
                                  type_vocab_size=1, num_labels=2, hidden_dropout_prob=0.0,
                                  attention_probs_dropout_prob=0.0)
    model = transformers.BertForSequenceClassification(cfg)
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(0, 50, (32, 8), generator=gen)
    batch = {"input_ids": ids, "labels": (ids[:, 1] < 25).long()}
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
    for _ in range(3):
        opt.zero_grad()
        model(**batch).loss.backward()
        opt.step()
    groups, others = scale_invariant_groups(model, (), batch)
    names = {id(p): n for n, p in model.named_parameters()}
    assert {k: sorted(names[id(p)] for p in v) for k, v in groups.items()} == {"joint": [
        "bert.embeddings.position_embeddings.weight", "bert.embeddings.token_type_embeddings.weight",
        "bert.embeddings.word_embeddings.weight"]}
    assert "classifier.weight" in others
