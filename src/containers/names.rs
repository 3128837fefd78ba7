//! docker-style generated names: `adjective_surname`.

const ADJECTIVES: &[&str] = &[
    "admiring",
    "brave",
    "clever",
    "dazzling",
    "eager",
    "festive",
    "gallant",
    "happy",
    "jolly",
    "keen",
    "lucid",
    "modest",
    "nifty",
    "optimistic",
    "peaceful",
    "quirky",
    "relaxed",
    "serene",
    "tender",
    "upbeat",
    "vibrant",
    "wizardly",
    "youthful",
    "zealous",
];

const SURNAMES: &[&str] = &[
    "babbage",
    "curie",
    "darwin",
    "euclid",
    "fermat",
    "galois",
    "hopper",
    "lovelace",
    "kepler",
    "lamarr",
    "meitner",
    "noether",
    "pascal",
    "ritchie",
    "shannon",
    "thompson",
    "turing",
    "wozniak",
    "yalow",
    "hypatia",
    "johnson",
    "knuth",
    "liskov",
    "mirzakhani",
];

pub fn generate_name() -> String {
    let a = ADJECTIVES[rand::random_range(0..ADJECTIVES.len())];
    let s = SURNAMES[rand::random_range(0..SURNAMES.len())];
    format!("{a}_{s}")
}
