import CEnvoySwiftABI

/// What ``Counter``, ``Gauge`` and ``Histogram`` share: the host's id of the metric and how to
/// record into it without allocating.
///
/// Recording passes the label values to the host as `envoy_swift_bytes_t` spans on the stack: the
/// values' UTF-8 is copied into one stack buffer (`withUnsafeTemporaryAllocation`), so the cost is
/// one host call plus a copy of the label bytes, whatever the strings are. Label values given as
/// an argument list (`labels: "a", "b"`) allocate nothing; an array (`labels: ["a", "b"]`) is
/// built by the caller, one heap allocation unless the optimizer keeps the literal on the stack.
struct MetricHandle: Sendable {
    let id: UInt32
    let kind: MetricKind
    let name: String
    let labelCount: Int
    let filterName: String
    let host: any FilterHost

    /// Adds to a counter or gauge, or observes into a histogram (`metric_record`).
    @inline(__always)
    func record<each L: StringProtocol>(_ value: Double, _ labels: repeat each L) {
        var count = 0, bytes = 0
        for label in repeat each labels {
            count += 1
            bytes += label.utf8.count
        }
        Self.withLabels(count: count, bytes: bytes, { packer in for label in repeat each labels { packer.put(label) } }) {
            spans in send(value, spans, set: false)
        }
    }

    /// Records with label values from an array.
    func record(_ value: Double, _ labels: [String]) {
        Self.withLabels(count: labels.count, bytes: labels.reduce(0) { $0 + $1.utf8.count }, { packer in
            for label in labels { packer.put(label) }
        }) { spans in send(value, spans, set: false) }
    }

    /// Sets a gauge (`metric_set`).
    @inline(__always)
    func set<each L: StringProtocol>(_ value: Double, _ labels: repeat each L) {
        var count = 0, bytes = 0
        for label in repeat each labels {
            count += 1
            bytes += label.utf8.count
        }
        Self.withLabels(count: count, bytes: bytes, { packer in for label in repeat each labels { packer.put(label) } }) {
            spans in send(value, spans, set: true)
        }
    }

    /// Sets a gauge with label values from an array.
    func set(_ value: Double, _ labels: [String]) {
        Self.withLabels(count: labels.count, bytes: labels.reduce(0) { $0 + $1.utf8.count }, { packer in
            for label in labels { packer.put(label) }
        }) { spans in send(value, spans, set: true) }
    }

    /// One host call; a refusal is logged (it is a programmer error: a wrong number of label values,
    /// a negative counter increment), never thrown.
    private func send(_ value: Double, _ labels: UnsafeBufferPointer<envoy_swift_bytes_t>, set: Bool) {
        do throws(HostError) {
            if set {
                try host.setMetric(id, labelValues: labels, value: value)
            } else {
                try host.recordMetric(id, labelValues: labels, value: value)
            }
        } catch {
            FilterLogger(host: host, filterName: filterName).warn(
                "metric \"\(name)\": recording \(value) with \(labels.count) label values failed: \(error)"
                    + (labels.count != labelCount ? " (the \(kind) has \(labelCount) labels)" : ""))
        }
    }

    /// Lays `count` label values of `bytes` bytes in all out on the stack and calls `body` with their
    /// spans.
    @inline(__always)
    static func withLabels<R>(
        count: Int, bytes: Int, _ fill: (inout LabelPacker) -> Void, _ body: (UnsafeBufferPointer<envoy_swift_bytes_t>) -> R
    ) -> R {
        withUnsafeTemporaryAllocation(of: envoy_swift_bytes_t.self, capacity: max(count, 1)) { spans in
            withUnsafeTemporaryAllocation(byteCount: max(bytes, 1), alignment: 1) { storage in
                var packer = LabelPacker(spans: spans, storage: storage)
                fill(&packer)
                return body(UnsafeBufferPointer(rebasing: spans[..<packer.count]))
            }
        }
    }
}

/// Copies label values into a stack buffer and records their spans.
struct LabelPacker {
    let spans: UnsafeMutableBufferPointer<envoy_swift_bytes_t>
    let storage: UnsafeMutableRawBufferPointer
    var count = 0
    var used = 0

    @inline(__always)
    mutating func put(_ label: some StringProtocol) {
        guard count < spans.count else { return }
        let start = used
        let copied = label.utf8.withContiguousStorageIfAvailable { utf8 in
            let n = min(utf8.count, storage.count - start)
            if n > 0 { (storage.baseAddress! + start).copyMemory(from: utf8.baseAddress!, byteCount: n) }
            return n
        }
        if let copied {
            used += copied
        } else {
            for byte in label.utf8 where used < storage.count {
                storage[used] = byte
                used += 1
            }
        }
        let base = storage.baseAddress.map { UnsafeRawPointer($0) } ?? LiveHost.emptyPointer
        spans[count] = envoy_swift_bytes_t(ptr: (base + start).assumingMemoryBound(to: CChar.self), length: used - start)
        count += 1
    }
}
