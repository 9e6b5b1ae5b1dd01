import LBConfig
import LBCore
import Testing

@testable import LBProxy

@Suite("Service routing")
struct ServiceRouterTests {
    func service(_ name: String, hosts: [String]? = nil, prefix: String = "/") -> Service {
        var service = Service(name: name, backends: [BackendSpec(address: HostPort(host: "127.0.0.1", port: 9001))])
        if let hosts { service.route = Service.Route(hosts: hosts, pathPrefix: prefix) }
        return service
    }

    /// A default service (0), one for `/api/` on any host (1), a wildcard host (2), an exact host (3),
    /// and the same host under `/admin` (4).
    func fiveRoutes() -> ServiceRouter {
        ServiceRouter(services: [
            service("default"),
            service("any-api", hosts: [], prefix: "/api/"),
            service("wild", hosts: ["*.lblab.test"]),
            service("exact", hosts: ["api.lblab.test"]),
            service("exact-admin", hosts: ["api.lblab.test"], prefix: "/admin"),
        ])
    }

    @Test("exact host before wildcard before any host; longest prefix; the default takes the rest")
    func specificity() {
        let router = self.fiveRoutes()
        #expect(router.route(host: "api.lblab.test", path: "/x") == 3)
        #expect(router.route(host: "API.LBLab.test:8080", path: "/x") == 3, "port and case do not matter")
        #expect(router.route(host: "api.lblab.test", path: "/admin/users") == 4, "longer prefix, same host rank")
        #expect(router.route(host: "www.lblab.test", path: "/x") == 2)
        #expect(router.route(host: "lblab.test", path: "/x") == 0, "*.lblab.test needs a subdomain")
        #expect(router.route(host: "www.lblab.test", path: "/api/v1") == 2, "a host match outranks a longer prefix")
        #expect(router.route(host: "other.test", path: "/api/v1") == 1)
        #expect(router.route(host: nil, path: "/") == 0)
        #expect(router.route(host: "[::1]:8080", path: "/") == 0)
    }

    @Test("a target in absolute form routes by its authority and path; its Host header does not count")
    func absoluteForm() {
        let router = self.fiveRoutes()
        #expect(router.route(host: "other.test", path: "http://api.lblab.test/admin/x") == 4)
        #expect(router.route(host: nil, path: "HTTP://API.lblab.test:8080") == 3, "no path is /, scheme and host in any case")
        #expect(router.route(host: "api.lblab.test", path: "https://other.test?q=/admin") == 0, "the query is not the path")
        #expect(router.route(host: nil, path: "http://user@www.lblab.test/api/v1") == 2, "user info is not the host")
        #expect(router.route(host: "api.lblab.test", path: "http://[::1]:8080/api/x") == 1)
        #expect(router.route(host: "api.lblab.test", path: "/http://other.test/") == 3, "origin form, whatever it holds")
        #expect(router.route(host: "WWW.LBLab.TEST", path: "/x") == 2, "a wildcard ignores case too")
    }

    @Test("without a default service, an unmatched request has no service")
    func noDefault() {
        let router = ServiceRouter(services: [service("only", hosts: ["a.test"])])
        #expect(router.route(host: "a.test", path: "/") == 0)
        #expect(router.route(host: "b.test", path: "/") == nil)
    }

    @Test("Host without port, any case, IPv6 literals kept whole")
    func hostNames() {
        let router = ServiceRouter(services: [service("default"), service("name", hosts: ["example.test"]), service("v6", hosts: ["[2001:db8::1]"])])
        #expect(router.route(host: "Example.TEST:80", path: "/") == 1)
        #expect(router.route(host: "[2001:db8::1]:8080", path: "/") == 2)
        #expect(router.route(host: "[2001:db8::1]", path: "/") == 2)
        #expect(router.route(host: "example.test", path: "/") == 1)
        #expect(router.route(host: "[2001:db8::1", path: "/") == 0, "an unclosed literal is not the host")
    }
}
