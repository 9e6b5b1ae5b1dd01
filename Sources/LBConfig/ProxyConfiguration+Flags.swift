public import LBCore

extension ProxyConfiguration {
    /// The configuration `lbctl proxy` builds from flags when no file is given (the seeds' quick use:
    /// `-listen 127.0.0.1:8080 -backend 127.0.0.1:9001 -backend … -algo LC -t 5`): one HTTP listener, one
    /// default service called `default` over `backends`, and, with `healthInterval`, a TCP check every
    /// that many seconds that takes a backend down at its first failure and brings it back at its first
    /// success (as the seed's periodic scan does).
    public init(
        listen: HostPort,
        backends: [HostPort],
        algorithm: Algorithm = .roundRobin,
        healthInterval: Duration? = nil
    ) {
        var service = Service(name: "default", algorithm: algorithm, backends: backends.map { BackendSpec(address: $0) })
        if let interval = healthInterval {
            let timeout = min(interval, .seconds(1))
            service.health = Service.HealthCheck(
                probe: .tcp,
                timing: HealthCheckConfiguration(interval: interval, timeout: timeout, rise: 1, fall: 1)
            )
        }
        self.init(listen: listen, services: [service])
    }
}
