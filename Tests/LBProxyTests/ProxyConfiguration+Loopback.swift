import LBConfig
import LBCore

extension ProxyConfiguration {
    /// A configuration for tests: one HTTP listener and the admin API, both on ephemeral loopback
    /// ports (so no test depends on port 9900 being free), over `services` on `threads` event loops.
    static func onLoopback(_ services: [Service], threads: Int) -> ProxyConfiguration {
        var configuration = ProxyConfiguration(listen: HostPort(host: "127.0.0.1", port: 0), services: services)
        configuration.threads = threads
        configuration.admin.address = HostPort(host: "127.0.0.1", port: 0)
        return configuration
    }
}
