//! Credentials in the files where people really leave them, each in its
//! real file name and syntax: every one is found by the shipped rules (the
//! rule named), and the count gitleaks 8.30.1 finds in the same tree with
//! its own config is printed beside (tests/peers/gitleaks.sh installs it).

mod corpus;

use std::collections::BTreeSet;

use secret_scan::detect::Detector;
use secret_scan::scan::{self, Settings};

/// (path, content, rule that must find it on `line`).
const FILES: &[(&str, &str, &str, usize)] = &[
    (
        "home/dev/.netrc",
        "machine api.heroku.com\n  login dev@corp.net\n  password 4f9c2a7e1b3d5f6a8c0e2b4d6f8a1c3e5b7d9f0a\n",
        "netrc-password",
        1,
    ),
    (
        "home/dev/.pgpass",
        "# host:port:db:user:password\ndb.corp.net:5432:orders:app:Xy7pQ2mK9vLr\n",
        "pgpass-password",
        2,
    ),
    (
        "home/dev/.git-credentials",
        "https://ci-bot:Qz7rT9vLp2MnXw4Yb8@git.corp.net\n",
        "url-credentials",
        1,
    ),
    (
        "etc/nginx/.htpasswd",
        "admin:$apr1$3Bs9wPq1$Wz5qXWm9yNq7F2cK8vL0b1\n",
        "htpasswd-hash",
        1,
    ),
    (
        "home/dev/.config/filezilla/sitemanager.xml",
        "<?xml version=\"1.0\"?>\n<FileZilla3>\n <Servers>\n  <Server>\n   <Host>ftp.corp.net</Host>\n   <User>deploy</User>\n   <Pass encoding=\"base64\">UXo3clQ5dkxwMk1uWHc0</Pass>\n  </Server>\n </Servers>\n</FileZilla3>\n",
        "filezilla-password",
        7,
    ),
    (
        "home/dev/.config/filezilla/recentservers.xml",
        "<FileZilla3>\n <RecentServers>\n  <Server><Host>ftp2.corp.net</Host><User>ops</User><Pass>Vt8qLm2xR7pK</Pass></Server>\n </RecentServers>\n</FileZilla3>\n",
        "filezilla-password",
        3,
    ),
    (
        "srv/www/wp-config.php",
        "<?php\ndefine( 'DB_NAME', 'wordpress' );\ndefine( 'DB_USER', 'wp' );\ndefine( 'DB_PASSWORD', 'Zn4wQ8rT2yB6mL' );\n",
        "wordpress-config-secret",
        4,
    ),
    (
        "app/config/database.yml",
        "production:\n  adapter: postgresql\n  database: app_production\n  username: app\n  password: Vt8qLm2xR7pKz\n",
        "rails-database-password",
        5,
    ),
    (
        "app/config/secrets.yml",
        "production:\n  secret_key_base: 8f2a9c4e6b1d3f5a7c9e0b2d4f6a8c1e3b5d7f9a0c2e4b6d8f1a3c5e7b9d0f2a4c6e8b1d3f5a7c9e0b2d4f6a8c1e3b5d7f9a0c2e4b6d8f1a3c5e7b9d0f2a\n",
        "rails-secret-key-base",
        2,
    ),
    (
        "site/settings.py",
        "DEBUG = False\nSECRET_KEY = 'x9$k2m!p7q@r4t8v#w1y5z3b6n0c^h&j'\n",
        "django-secret-key",
        2,
    ),
    (
        "home/dev/.s3cfg",
        "[default]\naccess_key = AKIAQ3ZT7WJNB5XKPRM4\nsecret_key = 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\n",
        "s3cfg-secret-key",
        3,
    ),
    (
        "home/dev/.aws/credentials",
        "[default]\naws_access_key_id = AKIAQ3ZT7WJNB5XKPRM5\naws_secret_access_key = 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\n",
        "aws-secret-access-key",
        3,
    ),
    (
        "home/dev/.docker/config.json",
        "{\n  \"auths\": {\n    \"registry.corp.net\": {\n      \"auth\": \"Y2ktYm90OlZ0OHFMbTJ4UjdwSw==\"\n    }\n  }\n}\n",
        "docker-config-auth",
        4,
    ),
    (
        "home/dev/.npmrc",
        "registry=https://npm.corp.net/\n//npm.corp.net/:_authToken=Qz7rT9vLp2MnXw4Yb8Zc\n",
        "npmrc-auth",
        2,
    ),
    (
        "home/dev/.pypirc",
        "[distutils]\nindex-servers = corp\n\n[corp]\nrepository = https://pypi.corp.net/\nusername = ci\npassword = Vt8qLm2xR7pKq\n",
        "pypirc-password",
        7,
    ),
    (
        "home/dev/.kube/config",
        "apiVersion: v1\nkind: Config\nusers:\n- name: ci\n  user:\n    token: Vt8qLm2xR7pKzn4wQ8rT2yB6mL9cX3vB\n- name: admin\n  user:\n    client-certificate-data: LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0t\n    client-key-data: bm90IGEgcmVhbCBrZXkgYnV0IGxvbmcgZW5vdWdoIHRvIGxvb2sgbGlrZSBvbmU=\n",
        "kubeconfig-user-credential",
        5,
    ),
    ("home/dev/.kube/config", "", "kubeconfig-client-key", 10),
    (
        "infra/terraform.tfstate",
        "{\n  \"version\": 4,\n  \"resources\": [{\"instances\": [{\"attributes\": {\"username\": \"admin\", \"password\": \"Vt8qLm2xR7pK!z\"}}]}]\n}\n",
        "terraform-state-secret",
        3,
    ),
    (
        "var/lib/jenkins/credentials.xml",
        "<com.cloudbees.plugins.credentials.impl.UsernamePasswordCredentialsImpl>\n  <username>deploy</username>\n  <password>{AQAAABAAAAAQwX9dPQ5L2mZ8vKc4rT7yU1iO3pA6sD9fG2hJ5kL8zX0cV=}</password>\n</com.cloudbees.plugins.credentials.impl.UsernamePasswordCredentialsImpl>\n",
        "jenkins-credential",
        3,
    ),
    (
        "backup/mysql-users.sql",
        "-- MySQL dump\nCREATE USER 'app'@'%' IDENTIFIED WITH mysql_native_password AS '*6BB4837EB74329105EE4568DDA7DC67ED2CA2AD9';\n",
        "sql-password",
        2,
    ),
    (
        "backup/roles.sql",
        "--\n-- PostgreSQL database cluster dump\n--\nCREATE ROLE app;\nALTER ROLE app WITH LOGIN PASSWORD 'md5a3556571e93b0d20722ba62be61e8c2d';\n",
        "sql-role-password",
        5,
    ),
    (
        "home/dev/.bash_history",
        "ls\nmysql -u root -pVt8qLm2xR7pK orders\nPGPASSWORD=Zn4wQ8rT2yB6 psql -h db.corp.net -U app\nsshpass -p 'Qz7rT9vLp2Mn' ssh deploy@web1\ncurl -u admin:Lk9vB2nM7qR4 https://ci.corp.net/api/json\n",
        "mysql-password-argument",
        2,
    ),
    ("home/dev/.bash_history", "", "pgpassword-variable", 3),
    ("home/dev/.bash_history", "", "sshpass-password", 4),
    ("home/dev/.bash_history", "", "curl-user-password", 5),
];

/// Passwords in URLs, one per line of `urls.txt`.
const URLS: &[&str] = &[
    "https://deploy:Vt8qLm2xR7pK@git.corp.net/app.git",
    "http://admin:Zn4wQ8rT2yB6@10.0.0.7:8080/manager",
    "ftp://backup:Qz7rT9vLp2Mn@ftp.corp.net/dumps/",
    "sftp://ops:Lk9vB2nM7qR4@files.corp.net:22/in",
    "smtp://alerts%40corp.net:hR4tY8wQ2mN6@mail.corp.net:587",
    "imaps://me:Xy7pQ2mK9vLr@imap.corp.net",
    "ldaps://reader:Ab3dE5fG7hJ9@ldap.corp.net:636",
    "ssh://git:Mn6bV4cX2zL8@git.corp.net:2222/repo",
    "wss://bot:Pq1wE3rT5yU7@ws.corp.net/feed",
    "postgres://app:Rt7yU2iO9pLk@db.corp.net:5432/orders",
    "mysql://root:Gh5jK7lZ9xC1@mysql.corp.net/app",
    "mongodb+srv://svc:Bn3mQ5wE7rT9@cluster0.a1b2c.mongodb.net/test",
    "redis://default:Yu8iO0pA2sD4@cache.corp.net:6379/0",
    "amqps://worker:Fg6hJ8kL0zX2@mq.corp.net:5671/vhost",
];

#[test]
fn credential_files_in_their_real_syntax() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("tree");
    for (path, content, _, _) in FILES {
        if content.is_empty() {
            continue;
        }
        let p = dir.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
    }
    std::fs::write(dir.join("urls.txt"), URLS.join("\n") + "\n").unwrap();

    let settings = Settings::new(vec![dir.clone()], 1 << 20);
    let (found, _, _) = scan::scan(
        &Detector::new(secret_scan::default_rules()),
        &settings,
        None,
        "",
    );
    let got: BTreeSet<(String, usize, String)> = found
        .iter()
        .map(|f| (f.rel.clone(), f.line, f.rule.clone()))
        .collect();
    let mut expected: BTreeSet<(String, usize, String)> = FILES
        .iter()
        .map(|(p, _, rule, line)| (p.to_string(), *line, rule.to_string()))
        .collect();
    for (i, url) in URLS.iter().enumerate() {
        let rule = if url.starts_with("http") || url.contains("://") && !is_database(url) {
            "url-credentials"
        } else {
            "database-connection-string"
        };
        expected.insert(("urls.txt".into(), i + 1, rule.into()));
    }
    let missed: Vec<_> = expected.difference(&got).collect();
    assert!(missed.is_empty(), "missed: {missed:#?}\nfound: {got:#?}");
    // The AWS key id in .s3cfg/.aws/credentials is found by its own rule;
    // nothing else beyond what was planted.
    let extra: Vec<_> = got
        .difference(&expected)
        .filter(|(_, _, rule)| rule != "aws-access-token")
        .collect();
    assert!(extra.is_empty(), "extra: {extra:#?}");
    let theirs = corpus::gitleaks::scan(&dir).len();
    eprintln!(
        "credential formats: secret-scan {} of {} planted; gitleaks' config finds {theirs} findings in the same tree",
        expected.len() - missed.len(),
        expected.len()
    );
}

fn is_database(url: &str) -> bool {
    ["postgres", "mysql", "mongodb", "redis", "amqp"]
        .iter()
        .any(|s| url.starts_with(s))
}
