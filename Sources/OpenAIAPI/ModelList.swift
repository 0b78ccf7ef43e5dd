/// The response of `GET /v1/models`.
public struct ModelList: Encodable, Sendable {
    public let object = "list"
    public var data: [Model]

    public init(_ models: [Model]) {
        data = models
    }

    public struct Model: Encodable, Sendable {
        public var id: String
        public let object = "model"
        /// Unix seconds.
        public var created: Int
        public var ownedBy: String

        public init(id: String, created: Int, ownedBy: String) {
            self.id = id
            self.created = created
            self.ownedBy = ownedBy
        }

        enum CodingKeys: String, CodingKey { case id, object, created, ownedBy = "owned_by" }
    }
}
