//! `mock_client!` as aws-smithy-mocks has it, with the test defaults set here: the SDK crates'
//! `test-util` feature would give the tests another feature set than the binaries, and so a
//! second build of every SDK crate.

/// A client of `$sdk` whose requests are answered by `$rules`, never sent.
macro_rules! mock_client {
    ($sdk:ident, $mode:expr, $rules:expr) => {
        mock_client!($sdk, $mode, $rules, |config| config)
    };
    ($sdk:ident, $mode:expr, $rules:expr, $configure:expr) => {{
        let mut interceptor = aws_smithy_mocks::MockResponseInterceptor::new().rule_mode($mode);
        for rule in $rules {
            interceptor = interceptor.with_rule(rule);
        }
        fn coerce<T: Fn($sdk::config::Builder) -> $sdk::config::Builder>(f: T) -> T {
            f
        }
        let defaults = $sdk::config::Config::builder()
            .behavior_version($sdk::config::BehaviorVersion::latest())
            .region($sdk::config::Region::new("us-east-1"))
            .credentials_provider($sdk::config::Credentials::new("AKIDTEST", "test-secret", None, None, "mocks"))
            .http_client(aws_smithy_mocks::create_mock_http_client())
            .interceptor(interceptor);
        $sdk::Client::from_conf(coerce($configure)(defaults).build())
    }};
}
