import torch

# Type promotion as torch does it, checked by the dtype comparisons a script writes.
i = torch.tensor([1, 2, 3])
f = torch.tensor([0.5, 1.5, 2.5])
d = torch.tensor([0.25, 0.5, 0.75], dtype=torch.float64)
b = torch.tensor([True, False, True])
i32 = torch.tensor([4, 5, 6], dtype=torch.int32)

cases = {
    "int_plus_float_scalar": i + 0.5,
    "int_div_int": i / 2,
    "int_times_int_scalar": i * 3,
    "int_plus_float_tensor": i + f,
    "float_plus_double": f + d,
    "float_times_double_scalar_tensor": f * torch.tensor(2.0, dtype=torch.float64),
    "bool_plus_int": b + i,
    "bool_times_float": b * f,
    "int32_plus_int64": i32 + i,
    "int32_plus_python_int": i32 + 1,
    "arange_times_half": torch.arange(4) * 0.5,
    "float_arange": torch.arange(0, 1, 0.25),
    "comparison": i > 1.5,
    "sum_of_bools": b.sum(),
    "mean_of_float_bools": b.float().mean(),
    "long_to_float": i.float(),
    "float_to_long": torch.tensor([1.7, -1.7]).long(),
    "pow_int": i ** 2,
    "pow_float": i ** 0.5,
    "neg_int": -i,
    "int_maximum_float": torch.maximum(i, f),
}
dtype_names = {torch.float32: "float32", torch.float64: "float64", torch.int64: "int64",
               torch.int32: "int32", torch.bool: "bool"}

RESULTS = {
    "dtypes": {name: dtype_names[value.dtype] for name, value in cases.items()},
    "values": {name: value for name, value in cases.items()},
    "default_float": torch.tensor(1.0).dtype == torch.float32,
    "default_int": torch.tensor(1).dtype == torch.int64,
    "zeros_default": torch.zeros(2).dtype == torch.float32,
    "tensor_of_list_of_bools": torch.tensor([True]).dtype == torch.bool,
    "type_as": dtype_names[i.type_as(d).dtype],
    "to_dtype": dtype_names[f.to(torch.float64).dtype],
    "is_floating_point": [i.is_floating_point(), f.is_floating_point()],
    "item_types": [type(i[0].item()).__name__, type(f[0].item()).__name__, type(b[0].item()).__name__],
}
