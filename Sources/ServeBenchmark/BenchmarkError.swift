/// Why a benchmark could not run at all (single requests fail as `RequestFailure`s instead).
public enum BenchmarkError: Error, CustomStringConvertible {
    case modelListUnavailable(url: String, reason: String)
    case warmupFailed(RequestFailure)
    /// The run finished, but no request succeeded: the report has nothing to measure.
    case allRequestsFailed(count: Int, first: RequestFailure)

    public var description: String {
        switch self {
        case .modelListUnavailable(let url, let reason):
            "cannot read the model list at \(url): \(reason) (check --url and --api-key, or pass --model)"
        case .warmupFailed(let failure):
            "the warm-up request failed: \(failure) (check --url, --model, --endpoint and --api-key)"
        case .allRequestsFailed(let count, let first):
            "all \(count) requests failed; the first: \(first)"
        }
    }
}
