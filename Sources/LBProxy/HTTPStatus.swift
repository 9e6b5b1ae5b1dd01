/// A status the proxy answers with, and its reason phrase.
struct HTTPStatus {
    var code: Int
    var reason: String

    static let badRequest = HTTPStatus(code: 400, reason: "Bad Request")
    static let notFound = HTTPStatus(code: 404, reason: "Not Found")
    static let requestTimeout = HTTPStatus(code: 408, reason: "Request Timeout")
    static let badGateway = HTTPStatus(code: 502, reason: "Bad Gateway")
    static let serviceUnavailable = HTTPStatus(code: 503, reason: "Service Unavailable")
    static let gatewayTimeout = HTTPStatus(code: 504, reason: "Gateway Timeout")
    static let notImplemented = HTTPStatus(code: 501, reason: "Not Implemented")
    static let requestHeaderFieldsTooLarge = HTTPStatus(code: 431, reason: "Request Header Fields Too Large")

    /// The status of `code`, with the reason phrase of the common ones.
    init(code: Int) {
        let known = [Self.badRequest, .notFound, .badGateway, .serviceUnavailable, .gatewayTimeout,
                     HTTPStatus(code: 500, reason: "Internal Server Error"), .notImplemented,
                     HTTPStatus(code: 505, reason: "HTTP Version Not Supported")]
        self = known.first { $0.code == code } ?? HTTPStatus(code: code, reason: "Error")
    }

    init(code: Int, reason: String) {
        self.code = code
        self.reason = reason
    }
}
