import CEnvoySwiftABI

/// What ``Counter``, ``Gauge`` and ``Histogram`` share: the host's id of the metric and how to
/// record into it without allocating.
///
/// Recording passes the label values to the host as `envoy_swift_bytes_t` spans on the stack: the
/// values' UTF-8 is copied into one stack buffer (`withUnsafeTemporaryAllocation`), so the cost is
/// one host call plus a copy of the label bytes, whatever the strings are. Label values given as
/// an argument list (`labels: "a", "b"`) allocate nothing; an array (`labels: ["a", "b"]`) is
/// built by the caller, one heap allocation unless the optimizer keeps the literal on the stack.
///
/// The argument-list forms are `@inlinable`, so they are specialized in the filter's own module for its
/// label types (a generic parameter pack left unspecialized costs about a thousand instructions a
/// call), and with the live host they call its `metric_record` / `metric_set` directly.
@usableFromInline
struct MetricHandle: Sendable {
    /// The host's `metric_record` / `metric_set`.
    @usableFromInline
    typealias RecordFn = @convention(c) (UInt32, UnsafePointer<envoy_swift_bytes_t>?, Int, Double) -> Int32

    @usableFromInline let id: UInt32
    let kind: MetricKind
    let name: String
    let labelCount: Int
    let filterName: String
    let host: any FilterHost
    /// The live host's callbacks, called without going through ``FilterHost``; nil for other hosts
    /// (the test kit's), which are called through the protocol.
    @usableFromInline let recordFn: RecordFn?
    @usableFromInline let setFn: RecordFn?

    init(id: UInt32, kind: MetricKind, name: String, labelCount: Int, filterName: String, host: any FilterHost) {
        self.id = id
        self.kind = kind
        self.name = name
        self.labelCount = labelCount
        self.filterName = filterName
        self.host = host
        let live = host as? LiveHost
        recordFn = id == unrecordedMetric ? nil : live?.metricRecordFn
        setFn = id == unrecordedMetric ? nil : live?.metricSetFn
    }

    /// Adds to a counter or gauge, or observes into a histogram (`metric_record`); sets a gauge with
    /// `set` (`metric_set`). Label values of any string type, laid out on the stack.
    @inlinable @inline(__always)
    func record<each L: StringProtocol>(_ value: Double, _ labels: repeat each L, set: Bool = false) {
        var count = 0, bytes = 0
        for label in repeat each labels {
            count += 1
            bytes += label.utf8.count
        }
        Self.withLabels(count: count, bytes: bytes, { packer in for label in repeat each labels { packer.put(label) } }) {
            spans in call(value, spans.baseAddress, spans.count, set: set)
        }
    }

    /// Records (or sets) with label values from an array.
    @usableFromInline
    func record(_ value: Double, _ labels: [String], set: Bool = false) {
        Self.withLabels(count: labels.count, bytes: labels.reduce(0) { $0 + $1.utf8.count }, { packer in
            for label in labels { packer.put(label) }
        }) { spans in call(value, spans.baseAddress, spans.count, set: set) }
    }

    /// One call into the host with label spans already laid out: the live host's function when there
    /// is one, else through ``FilterHost``.
    @inlinable @inline(__always)
    func call(_ value: Double, _ spans: UnsafePointer<envoy_swift_bytes_t>?, _ count: Int, set: Bool) {
        if let fn = set ? setFn : recordFn {
            let rc = fn(id, spans, count, value)
            if rc != 0 { failed(rc, value, count) }
        } else {
            send(value, UnsafeBufferPointer(start: spans, count: count), set: set)
        }
    }

    /// No label: nothing to lay out.
    @inlinable @inline(__always)
    func record(_ value: Double, set: Bool = false) {
        call(value, nil, 0, set: set)
    }

    /// One `String` label, the common case: its UTF-8 is passed where it is (a native string's
    /// storage), without a copy.
    @inlinable @inline(__always)
    func record(_ value: Double, _ a: String, set: Bool = false) {
        var a = a
        a.withUTF8 { ua in
            var span = Self.span(ua)
            call(value, &span, 1, set: set)
        }
    }

    /// Two `String` labels.
    @inlinable @inline(__always)
    func record(_ value: Double, _ a: String, _ b: String, set: Bool = false) {
        var a = a, b = b
        a.withUTF8 { ua in
            b.withUTF8 { ub in
                var spans = (Self.span(ua), Self.span(ub))
                withUnsafeMutableBytes(of: &spans) { raw in
                    call(value, raw.baseAddress!.assumingMemoryBound(to: envoy_swift_bytes_t.self), 2, set: set)
                }
            }
        }
    }

    @inlinable @inline(__always)
    static func span(_ utf8: UnsafeBufferPointer<UInt8>) -> envoy_swift_bytes_t {
        let base = utf8.baseAddress.map { UnsafeRawPointer($0) } ?? UnsafeRawPointer(("" as StaticString).utf8Start)
        return envoy_swift_bytes_t(ptr: base.assumingMemoryBound(to: CChar.self), length: utf8.count)
    }


    /// The live host refused a record: logged as ``send(_:_:set:)`` logs it.
    @usableFromInline
    func failed(_ rc: Int32, _ value: Double, _ count: Int) {
        let error = HostError(result: rc) ?? .invalid
        FilterLogger(host: host, filterName: filterName).warn(
            "metric \"\(name)\": recording \(value) with \(count) label values failed: \(error)"
                + (count != labelCount ? " (the \(kind) has \(labelCount) labels)" : ""))
    }

    /// One host call; a refusal is logged (it is a programmer error: a wrong number of label values,
    /// a negative counter increment), never thrown.
    @usableFromInline
    func send(_ value: Double, _ labels: UnsafeBufferPointer<envoy_swift_bytes_t>, set: Bool) {
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
    @inlinable @inline(__always)
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
@usableFromInline
struct LabelPacker {
    @usableFromInline let spans: UnsafeMutableBufferPointer<envoy_swift_bytes_t>
    @usableFromInline let storage: UnsafeMutableRawBufferPointer
    @usableFromInline var count = 0
    @usableFromInline var used = 0

    @inlinable
    init(spans: UnsafeMutableBufferPointer<envoy_swift_bytes_t>, storage: UnsafeMutableRawBufferPointer) {
        self.spans = spans
        self.storage = storage
    }

    @inlinable @inline(__always)
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
        let base = storage.baseAddress.map { UnsafeRawPointer($0) } ?? UnsafeRawPointer(("" as StaticString).utf8Start)
        spans[count] = envoy_swift_bytes_t(ptr: (base + start).assumingMemoryBound(to: CChar.self), length: used - start)
        count += 1
    }
}
