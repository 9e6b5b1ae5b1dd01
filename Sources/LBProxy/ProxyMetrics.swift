import LBCore
public import Prometheus

/// The proxy's metrics in Prometheus form (swift-prometheus): requests and their latency per backend,
/// answers the proxy gave itself, retries and ejections; in-flight requests, health, ejection,
/// draining and weight are read from each backend's state when scraped.
public final class ProxyMetrics: Sendable {
    /// The registry `GET /metrics` emits.
    public let registry = PrometheusCollectorRegistry()

    /// Upper bounds of the latency histograms' buckets.
    static let latencyBuckets: [Duration] = [
        .microseconds(500), .milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10), .milliseconds(25),
        .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1), .seconds(2.5),
        .seconds(5), .seconds(10),
    ]

    public init() {}

    private static func name(_ name: String, _ unit: String, _ help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(namespace: "lblab", metricName: name, unitName: unit, helpText: help)
    }

    /// The metrics of one backend of `service`.
    func backend(service: String, name: String) -> BackendMetrics {
        let labels = [("service", service), ("backend", name)]
        return BackendMetrics(
            responses: ["1xx", "2xx", "3xx", "4xx", "5xx"].map { code in
                self.registry.makeCounter(descriptor: Self.name("backend_responses", "total", "Responses from the backend that went to clients, by status class."), labels: labels + [("code", code)])
            },
            latency: self.registry.makeDurationHistogram(
                descriptor: Self.name("backend_response", "seconds", "Time from sending the request to the end of the backend's response."),
                labels: labels,
                buckets: Self.latencyBuckets
            ),
            ejections: self.registry.makeCounter(descriptor: Self.name("backend_ejections", "total", "Times outlier detection ejected the backend."), labels: labels),
            gauges: BackendGauges(
                inFlight: self.registry.makeGauge(descriptor: Self.name("backend_in_flight", "", "Requests in flight to the backend."), labels: labels),
                up: self.registry.makeGauge(descriptor: Self.name("backend_up", "", "1 when active health checks consider the backend up."), labels: labels),
                ejected: self.registry.makeGauge(descriptor: Self.name("backend_ejected", "", "1 while outlier detection has the backend ejected."), labels: labels),
                draining: self.registry.makeGauge(descriptor: Self.name("backend_draining", "", "1 while an operator drains the backend."), labels: labels),
                weight: self.registry.makeGauge(descriptor: Self.name("backend_weight", "", "The backend's weight."), labels: labels)
            )
        )
    }

    /// The metrics of one service: retries and the answers the proxy gave itself.
    func service(_ name: String) -> ServiceMetrics {
        ServiceMetrics(
            retries: self.registry.makeCounter(descriptor: Self.name("retries", "total", "Attempts sent again to another backend (requeues of refused connections included)."), labels: [("service", name)]),
            proxyAnswers: [400, 404, 502, 503, 504].map { code in
                (code, self.registry.makeCounter(descriptor: Self.name("proxy_responses", "total", "Answers the proxy gave itself instead of a backend's, by status."), labels: [("service", name), ("code", String(code))]))
            }
        )
    }

    /// Forgets the metrics of a removed backend.
    func remove(_ metrics: BackendMetrics) {
        for counter in metrics.responses { self.registry.unregisterCounter(counter) }
        self.registry.unregisterDurationHistogram(metrics.latency)
        self.registry.unregisterCounter(metrics.ejections)
        let gauges = metrics.gauges
        for gauge in [gauges.inFlight, gauges.up, gauges.ejected, gauges.draining, gauges.weight] {
            self.registry.unregisterGauge(gauge)
        }
    }

    /// Forgets the metrics of a retired service (its backends' go by ``remove(_:)-(BackendMetrics)``).
    func remove(_ metrics: ServiceMetrics) {
        self.registry.unregisterCounter(metrics.retries)
        for (_, counter) in metrics.proxyAnswers { self.registry.unregisterCounter(counter) }
    }

    /// The metrics in Prometheus' text format, after reading the gauges from `services`' backends.
    public func emit(_ services: [ServiceRuntime]) -> [UInt8] {
        for service in services {
            for backend in service.backends {
                let gauges = backend.metrics.gauges
                let state = backend.state
                gauges.inFlight.set(Int64(state.inFlight))
                gauges.up.set(Int64(state.isHealthy ? 1 : 0))
                gauges.ejected.set(Int64(state.isEjected ? 1 : 0))
                gauges.draining.set(Int64(state.isDraining ? 1 : 0))
                gauges.weight.set(Int64(backend.spec.weight))
            }
        }
        return self.registry.emitToBuffer()
    }
}

/// What is counted per backend; a class, so that handing it on is one reference.
public final class BackendMetrics: Sendable {
    /// Responses by status class: index 0 for 1xx up to 4 for 5xx.
    let responses: [Counter]
    let latency: DurationHistogram
    let ejections: Counter
    let gauges: BackendGauges

    init(responses: [Counter], latency: DurationHistogram, ejections: Counter, gauges: BackendGauges) {
        self.responses = responses
        self.latency = latency
        self.ejections = ejections
        self.gauges = gauges
    }

    /// Counts a response of `status` that took `latency`.
    func record(status: Int, latency: Duration) {
        let index = min(4, max(0, status / 100 - 1))
        self.responses[index].increment()
        self.latency.record(latency)
    }
}

/// The gauges of a backend, set when scraped.
struct BackendGauges: Sendable {
    let inFlight: Gauge
    let up: Gauge
    let ejected: Gauge
    let draining: Gauge
    let weight: Gauge
}

/// What is counted per service.
struct ServiceMetrics: Sendable {
    let retries: Counter
    let proxyAnswers: [(Int, Counter)]

    /// Counts an answer of `status` the proxy gave itself.
    func proxyAnswered(_ status: Int) {
        self.proxyAnswers.first { $0.0 == status }?.1.increment()
    }
}
