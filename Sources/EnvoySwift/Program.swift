import CEnvoySwiftABI
import Synchronization

/// The library-wide state the C hooks share: the live host, set once by
/// `envoy_swift_program_init`.
enum Program {
    private static let host = Mutex<LiveHost?>(nil)

    /// The host from `envoy_swift_program_init`, or `nil` before it.
    static var liveHost: LiveHost? {
        host.withLock { $0 }
    }

    /// Adopts the host's table and registers the library's filters. Returns 0, or a negative
    /// value after logging why (through the host's log when the table allows it).
    static func initialize(_ table: UnsafePointer<envoy_swift_host_t>?) -> Int32 {
        guard let table else { return -1 }
        let live: LiveHost
        do {
            live = try LiveHost(table: table)
        } catch {
            // Only a table of our own version has a log callback where we expect it.
            if table.pointer(to: \.abi_version)!.pointee == UInt32(ENVOY_SWIFT_ABI_VERSION),
                table.pointer(to: \.size)!.pointee >= LiveHost.requiredSize,
                let log = table.pointer(to: \.log)!.pointee
            {
                LiveHost.withBytes("", "envoy_swift_program_init: \(error)") { f, m in log(ENVOY_SWIFT_LOG_ERROR, f, m) }
            }
            return -1
        }
        host.withLock { $0 = live }
        let found = LibraryEntryPoint.run()
        guard found.called || !FilterRegistry.pluginNames.isEmpty else {
            live.log(
                .error, filter: "",
                message: "\(found.image): no filters registered: the library exports no \(FilterRegistry.entryPointSymbol) function")
            return -2
        }
        live.log(
            .debug, filter: "",
            message: "\(found.image): Swift filters: \(FilterRegistry.pluginNames.joined(separator: ", "))")
        return 0
    }
}
