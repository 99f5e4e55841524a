// Writing the model file by splicing the input: unchanged ranges copied by
// the kernel, only the rewritten payloads written (docs/DESIGN.md section
// 10, model file); or, when that cannot pay, serialised in full.
#include <cstring>
#include <limits>

#include <google/protobuf/io/zero_copy_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl.h>

#include "save_internal.h"

namespace onnx_reinit {

namespace {

// Length of the common prefix of a and b (of equal size), found a page at
// a time with memcmp.
std::size_t common_prefix(const std::byte* a, const std::byte* b, std::size_t n) {
  constexpr std::size_t page = 4096;
  std::size_t i = 0;
  while (i + page <= n && std::memcmp(a + i, b + i, page) == 0) i += page;
  while (i < n && a[i] == b[i]) ++i;
  return i;
}

// Length of the common suffix of a and b (of equal size).
std::size_t common_suffix(const std::byte* a, const std::byte* b, std::size_t n) {
  constexpr std::size_t page = 4096;
  std::size_t i = 0;
  while (i + page <= n && std::memcmp(a + n - i - page, b + n - i - page, page) == 0) i += page;
  while (i < n && a[n - i - 1] == b[n - i - 1]) ++i;
  return i;
}

// Writing by splicing: the serialisation goes through a buffer compared
// with the input model at the same offsets; runs equal to the input are
// copied from it by the kernel and only the rest (the rewritten payloads)
// is written. The file is the serialisation byte for byte whatever the
// comparison finds, so it equals what the plain writer would write.
class splice_stream : public google::protobuf::io::ZeroCopyOutputStream {
 public:
  splice_stream(range_source& input, output_file& out)
      : input_(input), out_(out), buffer_(std::make_unique_for_overwrite<std::byte[]>(capacity)) {}

  bool Next(void** data, int* size) override {
    consume();
    *data = buffer_.get();
    *size = static_cast<int>(capacity);
    used_ = capacity;
    return true;
  }
  void BackUp(int count) override { used_ -= static_cast<std::size_t>(count); }
  std::int64_t ByteCount() const override { return static_cast<std::int64_t>(pos_ + used_); }
  // Writes what is still buffered or pending.
  void finish() {
    consume();
    copy_equal(pos_);
  }

 private:
  static constexpr std::size_t capacity = std::size_t{1} << 20;

  void consume() {
    const std::size_t n = std::exchange(used_, 0);
    const std::span<const std::byte> in = input_.file().bytes();
    const std::size_t overlap =
        pos_ < in.size() ? std::min<std::size_t>(n, in.size() - pos_) : std::size_t{0};
    const std::byte* chunk = buffer_.get();
    const std::size_t head = common_prefix(chunk, in.data() + pos_, overlap);
    if (head == n) {  // equal throughout: the pending run grows
      pos_ += n;
      return;
    }
    const std::size_t tail =
        overlap == n ? common_suffix(chunk + head, in.data() + pos_ + head, n - head) : 0;
    copy_equal(pos_ + head);
    out_.write(std::span<const std::byte>(chunk + head, n - head - tail));
    equal_from_ = pos_ + n - tail;
    pos_ += n;
  }
  // Copies the pending run of bytes equal to the input, up to `to`.
  void copy_equal(std::uint64_t to) {
    if (to > equal_from_) out_.copy(input_, equal_from_, to - equal_from_);
    equal_from_ = to;
  }

  range_source& input_;
  output_file& out_;
  std::unique_ptr<std::byte[]> buffer_;
  std::size_t used_ = 0;
  std::uint64_t pos_ = 0;         // bytes consumed
  std::uint64_t equal_from_ = 0;  // start of the pending equal run
};

// Serialises `proto` to `file` by splicing the input model (see
// splice_stream). Returns false, having written nothing, when it cannot
// pay: no input file, or a serialisation of another length (a payload or
// its storage changed size, the model was edited).
bool splice_model(const loaded_model& model, const onnx::ModelProto& proto, std::size_t size,
                  output_file& file, const fs::path& out) {
  const auto& input = model_io_access::state(model).model_file;
  if (!input || input->bytes().size() != size) return false;
  range_source source(*input);
  splice_stream stream(source, file);
  if (!proto.SerializeToZeroCopyStream(&stream))
    throw io_error(fmt::format("cannot write {}", out), out.string(),
                   std::make_error_code(std::errc::io_error));
  stream.finish();
  return true;
}

// True when the proto is as loaded but for the payloads left in the model
// file (whose fields keep their placeholder whatever is written to them).
bool unchanged_since_load(const loaded_model& model) {
  const auto& st = model_io_access::state(model);
  return st.canonical && serialized(model.proto()) == st.skeleton;
}

// The input model with the ranges of the payloads rewritten since load
// replaced by their new bytes, streamed from their sources; every other
// byte is copied by the kernel.
void splice_payloads(const loaded_model& model, output_file& file, write_context& writer) {
  const auto& st = model_io_access::state(model);
  copy_with_rewrites(model, *st.model_file, st.detached_order, model.path().filename().string(),
                     file, writer, true);
}

}  // namespace

void inline_detached(const loaded_model& model, proto_patch& patch) {
  for (onnx::TensorProto* t : model_io_access::state(model).detached_order) {
    // Moved to a data file by this save (stage_consolidated): nothing to set.
    if (t->data_location() == onnx::TensorProto::EXTERNAL) continue;
    auto placeholder = std::make_shared<std::string>(detached_bytes(model, *t));
    placeholder->swap(*t->mutable_raw_data());
    patch.add([t, placeholder] { placeholder->swap(*t->mutable_raw_data()); });
  }
}

std::size_t checked_serialized_size(const onnx::ModelProto& proto, const std::string& where) {
  const std::size_t size = proto.ByteSizeLong();
  if (size > static_cast<std::size_t>(std::numeric_limits<int>::max()))
    throw model_error(fmt::format("the output model would be {} bytes, over protobuf's 2 GiB "
                                  "limit; write tensors as external data",
                                  size),
                      where);
  return size;
}

// Returns true when the file was written by splicing: the payloads left in
// the model file spliced into it when nothing else changed, else the
// serialised proto spliced by comparison (splice_model).
bool serialize_model(const loaded_model& model, const fs::path& path, const fs::path& out,
                     bool splice, write_context& writer) {
  proto_patch inlined;
  if (!model_io_access::state(model).detached.empty()) {
    if (splice && unchanged_since_load(model)) {
      output_file file(path, out);
      splice_payloads(model, file, writer);
      file.finish();
      return true;
    }
    inline_detached(model, inlined);
  }
  const onnx::ModelProto& proto = model.proto();
  const std::size_t size = checked_serialized_size(proto, out.string());
  output_file file(path, out);
  if (splice && splice_model(model, proto, size, file, out)) {
    file.finish();
    return true;
  }
  {
    google::protobuf::io::FileOutputStream stream(file.fd());
    if (!proto.SerializeToZeroCopyStream(&stream) || !stream.Flush())
      throw io_error(fmt::format("cannot write {}", out), out.string(),
                     std::error_code(stream.GetErrno() != 0 ? stream.GetErrno() : EIO,
                                     std::generic_category()));
  }
  file.finish();
  return false;
}

}  // namespace onnx_reinit
