import CEnvoySwiftShims

/// Finds and calls the library's registration function (``FilterRegistry/entryPointSymbol``).
///
/// Swift has no load-time initialisers, so a library names its filters in one exported function.
/// The SDK reaches it through a weak C reference (in `CEnvoySwiftShims`) that the linker resolves
/// when it links the SDK and the filters into one image: the same in `libswiftfilter.so`, in an
/// author's own shared library, and in a `swift test` binary. Each image that links the SDK
/// reaches its own function, never another filter library's.
enum LibraryEntryPoint {
    /// The outcome of a search: the file searched, and whether the function was found and called.
    struct Outcome {
        var image: String
        var called: Bool
    }

    /// Calls the registration function once, if the image has one.
    static func run() -> Outcome {
        let image = String(cString: envoy_swift_shim_image_path())
        guard let register = envoy_swift_shim_registration() else {
            return Outcome(image: image, called: false)
        }
        register()
        return Outcome(image: image, called: true)
    }
}
