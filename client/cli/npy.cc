#include "client/cli/npy.h"

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/status.h"

namespace varscope::cli {
namespace {

constexpr absl::string_view kMagic = "\x93NUMPY";

struct NpyType {
  DType dtype;
  char kind;
  int size;
};
// numpy's kind character and item size of each dtype numpy has.
constexpr NpyType kNpyTypes[] = {
    {v1::DT_FLOAT, 'f', 4}, {v1::DT_DOUBLE, 'f', 8}, {v1::DT_HALF, 'f', 2},
    {v1::DT_INT8, 'i', 1},  {v1::DT_UINT8, 'u', 1},  {v1::DT_INT16, 'i', 2},
    {v1::DT_INT32, 'i', 4}, {v1::DT_INT64, 'i', 8},  {v1::DT_BOOL, 'b', 1}};

absl::Status NotNpy(absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat("Not a .npy array: ", why));
}

// The value of `key` in the header dict, up to the next top-level ',' or
// '}' (a tuple's commas are inside parentheses).
absl::StatusOr<absl::string_view> DictValue(absl::string_view dict,
                                            absl::string_view key) {
  const std::string quoted = absl::StrCat("'", key, "':");
  size_t at = dict.find(quoted);
  if (at == absl::string_view::npos) {
    return NotNpy(absl::StrCat("the header has no '", key, "'"));
  }
  at += quoted.size();
  size_t end = at;
  int depth = 0;
  while (end < dict.size()) {
    const char c = dict[end];
    if (c == '(') ++depth;
    if (c == ')') --depth;
    if (depth == 0 && (c == ',' || c == '}')) break;
    ++end;
  }
  return absl::StripAsciiWhitespace(dict.substr(at, end - at));
}

}  // namespace

absl::StatusOr<std::string> NpyHeader(DType dtype,
                                      absl::Span<const int64_t> dims) {
  const NpyType* type =
      std::find_if(std::begin(kNpyTypes), std::end(kNpyTypes),
                   [&](const NpyType& t) { return t.dtype == dtype; });
  if (type == std::end(kNpyTypes)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "numpy has no dtype for ", DTypeName(dtype), "; convert it first"));
  }
  const char order = type->size == 1 ? '|' : '<';
  std::string shape = absl::StrJoin(dims, ", ");
  if (dims.size() == 1) shape += ",";
  std::string dict = absl::StrCat(
      "{'descr': '", std::string(1, order), std::string(1, type->kind),
      type->size, "', 'fortran_order': False, 'shape': (", shape, "), }");
  // magic(6) + version(2) + length(2) + dict + padding + '\n' is a multiple
  // of 64, as numpy writes it.
  const size_t unpadded = kMagic.size() + 4 + dict.size() + 1;
  dict.append((64 - unpadded % 64) % 64, ' ');
  dict.push_back('\n');
  std::string header(kMagic);
  header.push_back('\x01');
  header.push_back('\x00');
  header.push_back(static_cast<char>(dict.size() & 0xff));
  header.push_back(static_cast<char>(dict.size() >> 8));
  return header + dict;
}

absl::StatusOr<Tensor> ParseNpy(absl::string_view bytes) {
  if (bytes.size() < 10 || bytes.substr(0, kMagic.size()) != kMagic) {
    return NotNpy("bad magic string");
  }
  const int major = static_cast<unsigned char>(bytes[6]);
  size_t header_size = 0, prefix = 0;
  if (major == 1) {
    prefix = 10;
    header_size = static_cast<unsigned char>(bytes[8]) |
                  static_cast<size_t>(static_cast<unsigned char>(bytes[9]))
                      << 8;
  } else if (major == 2 || major == 3) {
    if (bytes.size() < 12) return NotNpy("truncated header");
    prefix = 12;
    for (int i = 3; i >= 0; --i) {
      header_size =
          (header_size << 8) | static_cast<unsigned char>(bytes[8 + i]);
    }
  } else {
    return NotNpy(absl::StrCat("unknown format version ", major));
  }
  if (bytes.size() < prefix + header_size) return NotNpy("truncated header");
  const absl::string_view dict = bytes.substr(prefix, header_size);

  VS_ASSIGN_OR_RETURN(absl::string_view descr, DictValue(dict, "descr"));
  VS_ASSIGN_OR_RETURN(absl::string_view fortran,
                      DictValue(dict, "fortran_order"));
  VS_ASSIGN_OR_RETURN(absl::string_view shape_text, DictValue(dict, "shape"));
  if (fortran != "False") {
    return absl::InvalidArgumentError(
        "Fortran-ordered .npy arrays are not supported; save "
        "numpy.ascontiguousarray(a) instead");
  }
  if (descr.size() < 4 || (descr.front() != '\'' && descr.front() != '"')) {
    return NotNpy(absl::StrCat("unsupported descr ", descr));
  }
  const absl::string_view type_text = descr.substr(1, descr.size() - 2);
  const char order = type_text[0];
  const char kind = type_text[1];
  int size = 0;
  const NpyType* type = std::end(kNpyTypes);
  if (absl::SimpleAtoi(type_text.substr(2), &size)) {
    type = std::find_if(
        std::begin(kNpyTypes), std::end(kNpyTypes),
        [&](const NpyType& t) { return t.kind == kind && t.size == size; });
  }
  if (type == std::end(kNpyTypes) ||
      (order != '<' && order != '>' && order != '|' && order != '=')) {
    return absl::InvalidArgumentError(absl::StrCat(
        "The .npy dtype ", descr,
        " has no Varscope counterpart (float16/32/64, int8/16/32/64, uint8, "
        "bool)"));
  }

  if (shape_text.size() < 2 || shape_text.front() != '(' ||
      shape_text.back() != ')') {
    return NotNpy(absl::StrCat("bad shape ", shape_text));
  }
  std::vector<int64_t> dims;
  for (absl::string_view d :
       absl::StrSplit(shape_text.substr(1, shape_text.size() - 2), ',',
                      absl::SkipWhitespace())) {
    int64_t dim = 0;
    if (!absl::SimpleAtoi(d, &dim) || dim < 0) {
      return NotNpy(absl::StrCat("bad shape ", shape_text));
    }
    dims.push_back(dim);
  }
  std::string data(bytes.substr(prefix + header_size));
  if (order == '>' && size > 1) {
    for (size_t i = 0; i + size <= data.size(); i += size) {
      std::reverse(data.begin() + i, data.begin() + i + size);
    }
  }
  absl::StatusOr<Tensor> tensor =
      Tensor::FromBytes(type->dtype, std::move(dims), std::move(data));
  if (!tensor.ok()) {
    return absl::DataLossError(
        absl::StrCat("The .npy data does not match its header: ",
                     tensor.status().message()));
  }
  return tensor;
}

}  // namespace varscope::cli
