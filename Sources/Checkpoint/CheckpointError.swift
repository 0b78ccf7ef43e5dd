/// Why a checkpoint (or one of its tensors) cannot be loaded or written.
/// Every case names the file and, where there is one, the tensor.
public enum CheckpointError: Error, CustomStringConvertible, Equatable {
    /// The directory has neither `model.safetensors` nor `model.safetensors.index.json`.
    case noWeights(directory: String)
    /// A file could not be opened, measured, mapped or written.
    case io(file: String, operation: String, reason: String)
    /// `model.safetensors.index.json` is malformed.
    case badIndex(file: String, reason: String)
    /// The index lists tensors in a shard file that is not in the directory.
    case missingShard(shard: String, index: String, tensorCount: Int, example: String)
    /// A safetensors file's header (length prefix or JSON) is malformed.
    case badHeader(file: String, reason: String)
    /// One tensor's header entry is malformed or inconsistent with the file.
    case badTensor(tensor: String, file: String, reason: String)
    /// The tensor is not in the checkpoint; `location` is the file the index assigns it to, or the directory.
    case missingTensor(String, location: String)
    /// The tensor's stored shape differs from the one the config implies.
    case shapeMismatch(tensor: String, file: String, shape: [Int], expected: [Int])
    /// The tensor's element type cannot be loaded this way.
    case unsupportedDType(tensor: String, file: String, dtype: String, reason: String)
    /// An FP8 weight has no `<name>_scale_inv`.
    case missingScale(tensor: String, scale: String, location: String)
    /// An FP8 weight is present but config.json has no `quantization_config.weight_block_size`.
    case missingBlockSize(tensor: String, file: String)
    /// A tensor handed to `SafetensorsWriter` is inconsistent (duplicate name, bad shape, wrong byte count).
    case invalidTensor(String, reason: String)

    public var description: String {
        switch self {
        case .noWeights(let directory):
            "\(directory) has neither model.safetensors nor model.safetensors.index.json"
        case .io(let file, let operation, let reason):
            "cannot \(operation) \(file): \(reason)"
        case .badIndex(let file, let reason):
            "\(file): \(reason)"
        case .missingShard(let shard, let index, let count, let example):
            "\(shard) is missing: \(index) maps \(count) tensor\(count == 1 ? "" : "s") to it (e.g. \(example))"
        case .badHeader(let file, let reason):
            "\(file): invalid safetensors header: \(reason)"
        case .badTensor(let tensor, let file, let reason):
            "tensor \(tensor) in \(file): \(reason)"
        case .missingTensor(let name, let location):
            "tensor \(name) missing from \(location)"
        case .shapeMismatch(let tensor, let file, let shape, let expected):
            "tensor \(tensor) in \(file) has shape \(shape), expected \(expected) (from config.json)"
        case .unsupportedDType(let tensor, let file, let dtype, let reason):
            "tensor \(tensor) in \(file) has dtype \(dtype): \(reason)"
        case .missingScale(let tensor, let scale, let location):
            "tensor \(tensor) is F8_E4M3 but its scale \(scale) is missing from \(location)"
        case .missingBlockSize(let tensor, let file):
            "tensor \(tensor) in \(file) is F8_E4M3 but config.json has no quantization_config.weight_block_size"
        case .invalidTensor(let name, let reason):
            "tensor \(name): \(reason)"
        }
    }
}
