#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Dispatch
import EnvoySwift
import Synchronization

/// `resume_probe` (a benchmark filter): measures how long it takes from a Swift continuation being
/// resumed on a foreign thread to the filter running again on the stream's worker thread, which is
/// the path of every async filter's answer (worker executor, host wake, worker run).
///
/// ```yaml
/// plugin_config: { stats_path: /_resume_stats }   # the default
/// ```
/// Each request suspends in its request headers callback until a dispatch queue resumes it,
/// records the delay, and continues. A request for `stats_path` is answered with
/// `samples=N p50_ns=X p99_ns=Y\n` over the samples so far, which it then clears.
public struct ResumeProbe: AsyncHTTPFilter {
    /// The configuration.
    public struct Config: Decodable, Sendable {
        /// The path answered with the statistics.
        public var statsPath: String

        /// Creates a configuration.
        /// - Parameter statsPath: the path answered with the statistics.
        public init(statsPath: String = "/_resume_stats") { self.statsPath = statsPath }

        enum CodingKeys: String, CodingKey {
            case statsPath = "stats_path"
        }

        /// Decodes `{ stats_path? }`.
        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            statsPath = try c.decodeIfPresent(String.self, forKey: .statsPath) ?? "/_resume_stats"
        }
    }

    /// At most this many samples are kept between two statistics requests.
    static let capacity = 1_000_000
    /// Delays in nanoseconds, oldest first.
    static let samples = Mutex<[UInt64]>([])
    /// The foreign thread that resumes the continuations.
    private static let resumer = DispatchQueue(label: "envoy-swift.resume-probe")

    private let config: Config
    private let context: FilterContext

    /// Creates the filter for one stream.
    public init(config: Config, context: FilterContext) {
        self.config = config
        self.context = context
    }

    /// Answers the statistics path; otherwise measures one resume and continues.
    public func onRequestHeaders(_ headers: HeaderMap, endOfStream: Bool) async throws -> FilterStatus {
        if context.request.path == config.statsPath {
            let taken = Self.samples.withLock { s -> [UInt64] in
                defer { s.removeAll(keepingCapacity: true) }
                return s
            }
            return .localReply(status: 200, headers: ["content-type": "text/plain"], body: Self.statistics(taken))
        }
        let t0 = await withCheckedContinuation { (c: CheckedContinuation<UInt64, Never>) in
            Self.resumer.async { c.resume(returning: Self.now()) }
        }
        let delay = Self.now() &- t0
        Self.samples.withLock { s in
            if s.count < Self.capacity { s.append(delay) }
        }
        return .continue
    }

    /// "samples=N p50_ns=X p99_ns=Y\n" (nearest-rank percentiles; 0 without samples).
    static func statistics(_ samples: [UInt64]) -> String {
        let sorted = samples.sorted()
        func percentile(_ p: Int) -> UInt64 {
            guard !sorted.isEmpty else { return 0 }
            let rank = (p * sorted.count + 99) / 100  // ceil(p/100 * n), 1-based
            return sorted[max(0, min(sorted.count, rank) - 1)]
        }
        return "samples=\(sorted.count) p50_ns=\(percentile(50)) p99_ns=\(percentile(99))\n"
    }

    /// CLOCK_MONOTONIC in nanoseconds.
    static func now() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }
}
