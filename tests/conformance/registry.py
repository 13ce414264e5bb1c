"""Every program of the suite, how its two runs are compared, and the gaps that keep it from
porting (a program with gaps is an expected failure until they are closed).

A Gap is written once and named by each program it breaks: `snippet` is the smallest code
that shows it, `torch` what PyTorch does, `ours` what tinygrad_tf does today, `match` a regex
that the failure it causes contains (a program that fails for a reason none of its gaps
match fails its test outright). When a gap is
closed, its programs start passing, their strict xfail turns red, and the gap is deleted
here (then regenerate docs/pytorch_compatibility.md: `python -m tests.conformance --write`).
"""
from dataclasses import dataclass, field
from pathlib import Path

PROGRAMS_DIR = Path(__file__).parent / "programs"


@dataclass(frozen=True)
class Gap:
    title: str
    snippet: str
    torch: str
    ours: str
    match: str  # regex found in the failure of a program with this gap (so it fails for this reason)


@dataclass(frozen=True)
class Program:
    name: str
    summary: str
    compared: str             # "values" (same numbers) or "properties" (the program draws from torch's RNG)
    rtol: float = 1e-10       # floats in RESULTS agree when |ours - torch| <= atol + rtol * |torch|
    atol: float = 1e-12
    expect: dict = field(default_factory=dict)  # RESULTS entries that must have these values in both runs
    stdout: str = None        # regex: the printed lines that match are compared with digits masked
    gaps: tuple = ()          # what keeps it from porting: the test is xfail(strict=True) while any remain

    @property
    def path(self):
        return PROGRAMS_DIR / f"{self.name}.py"

    @property
    def source(self):
        return self.path.read_text()


FLOAT32 = dict(rtol=1e-5, atol=1e-6)

# --- gaps found by the suite -----------------------------------------------------------------
SIZE_AND_DTYPE_NAMES = Gap(
    "shapes print as tuples and dtypes as NumPy names",
    "print(x.shape, x.dtype)",
    "prints torch.Size([4, 3]) torch.float32",
    "prints (4, 3) float32 (tinygrad_tf.Size is a tuple subclass that compares equal to torch.Size's tuple)",
    match=r"'Size'|shape_str|dtype_str|printed lines differ")

# --- the programs ----------------------------------------------------------------------------
PROGRAMS = [
    Program("lecture_gpt", "The lecture GPT (Head, MultiHeadAttention, FeedFoward, Block), trained and sampled",
            "properties", expect=dict(loss_fell=True, starts_near_uniform=True, sample_in_vocab=True,
                                      targets_shifted=True, data_is_long=True),
            stdout=r"^step |M parameters"),
    Program("mlp_regression", "MLP regression in float64, SGD with momentum, weight decay and Nesterov",
            "values"),
    Program("makemore_mlp", "makemore MLP: Dataset subclass, random_split, seeded shuffling DataLoader, "
                            "top-k and top-p sampling", "properties",
            expect=dict(split_is_partition=True, targets_per_epoch=True, epoch_is_shuffled=True,
                        seeded_loaders_agree=True, starts_near_uniform=True, loss_fell=True,
                        samples_in_vocab=True), stdout=r"^epoch "),
    Program("makemore_scratch", "makemore MLP from scratch: C[X], hand-written batch norm, manual update",
            "values"),
    Program("bigram_counts", "makemore's counting bigram model and multinomial sampling", "values",
            expect=dict(rows_sum_to_one=True, names_end_with_dot=True)),
    Program("nanogpt_model", "nanoGPT-style model file: weight tying, decay/no-decay AdamW groups, "
                             "clip_grad_norm_, accumulation, top-k generate", "values", **FLOAT32,
            expect=dict(tied=True, paths_agree=True, generated_in_vocab=True, loss_is_none=True),
            stdout=r"^iter |^num "),
    Program("classifier_training", "TensorDataset/DataLoader classifier: Adam, LambdaLR, accuracy, "
                                   "torch.save/torch.load of a state_dict", "values", **FLOAT32,
            expect=dict(restored_matches=True), stdout=r"^epoch "),
    Program("checkpoint_resume", "checkpoint dict (model, optimizer, step) saved, loaded and resumed",
            "values", **FLOAT32, expect=dict(resume_is_exact=True)),
    Program("linear_regression_scratch", "linear regression with autograd and an in-place no_grad update",
            "values"),
    Program("snippet_masks_where_clamp", "where, clamp, masked_fill, setitem with masks and index tensors",
            "values"),
    Program("snippet_gather_index", "C[X], probs[arange, y], gather, index_select, slicing, one_hot",
            "values"),
    Program("snippet_reductions_sorting", "max/min named tuples, sort, topk, argsort, argmax, cumsum, "
                                          "mean/var/std over dims", "values"),
    Program("snippet_type_promotion", "dtypes of mixed int/float/bool/float64 arithmetic", "values"),
    Program("snippet_reshape_split_cat", "view/reshape/permute, split into q, k, v, chunk, cat, stack, "
                                         "expand, repeat, flip, roll", "values"),
    Program("snippet_attention_math", "causal attention by hand and F.scaled_dot_product_attention",
            "values", expect=dict(sdpa_matches_manual=True, att_upper_is_zero=True)),
    Program("snippet_losses", "cross_entropy options, nll_loss, mse_loss, l1_loss, hand-written BCE",
            "values", expect=dict(nll_equals_ce=True)),
    Program("snippet_autograd", "retain_grad, accumulation, retain_graph, backward(gradient), no_grad, "
                                "set_grad_enabled, hooks", "values", expect=dict(accumulated_is_double=True)),
    Program("snippet_nn_modules", "Module surface: containers, buffers, state_dict, apply, freezing, "
                                  "layers' values and gradients", "values", expect=dict(grads_cleared=True)),
    Program("snippet_random_properties", "seeding, Generator, randn/rand/randint/randperm/multinomial laws, "
                                         "dropout, default inits", "properties",
            expect=dict(reseeding_repeats=True, generators_repeat=True, randn_mean_near_0=True,
                        randn_std_near_1=True, rand_in_unit_interval=[True, True], rand_mean_near_half=True,
                        randint_range=[3, 8], randperm_is_permutation=True,
                        multinomial_frequencies=[True, True, True], multinomial_without_replacement=True,
                        dropout_rate=True, dropout_eval_identity=True, linear_init_bounds=[True, True],
                        linear_init_spread=True, embedding_init_std=True, xavier_bounds=True)),
    Program("snippet_bool_mask_ops", "combining masks with &, |, ~", "values"),
    Program("snippet_floordiv_mod", "row and column of a flat index with // and %", "values"),
    Program("snippet_from_numpy", "nanoGPT's get_batch: torch.from_numpy", "values"),
    Program("snippet_setitem_in_graph", "setitem into a tensor in the graph, then backward", "values"),
    Program("snippet_contiguous_view", "merging heads: transpose(1, 2).contiguous().view(B, T, C)", "values"),
    Program("snippet_loss_modules", "nn.CrossEntropyLoss and nn.MSELoss", "values", **FLOAT32),
    Program("snippet_lr_schedulers", "StepLR and CosineAnnealingLR", "values"),
    Program("gap_shape_dtype_printing", "printing shapes and dtypes, torch.Size", "values",
            stdout=r".", gaps=(SIZE_AND_DTYPE_NAMES,)),
    Program("snippet_equal_allclose", "torch.equal, torch.allclose, torch.isclose", "values"),
    Program("snippet_load_map_location", "torch.load(path, map_location=device, weights_only=True)", "values"),
]

# torch names common in small training scripts that tinygrad_tf lacks and no program above
# exercises; a test checks that each is still absent, so this list cannot go stale.
ABSENT = [
    "torch.einsum", "torch.bmm", "torch.nonzero", "torch.unique", "torch.compile", "torch.autograd.grad",
    "torch.Tensor.new_zeros", "nn.BatchNorm1d", "nn.Conv2d", "nn.LSTM", "nn.LeakyReLU",
    "F.binary_cross_entropy_with_logits", "F.pad", "torch.optim.RMSprop", "nn.init.trunc_normal_",
]
