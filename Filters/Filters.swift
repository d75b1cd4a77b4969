// The reference filters built into libswiftfilter.so live in this target, one file each.
// The filter SDK they are written against is the EnvoySwift module (Sources/EnvoySwift).
@_exported import EnvoySwift
