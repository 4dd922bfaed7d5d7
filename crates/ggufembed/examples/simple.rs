//! Embeds a query and a few documents and ranks the documents by cosine similarity.
//!
//! ```text
//! cargo run --release -p ggufembed --example simple [-- MODEL.gguf]
//! ```
//!
//! Without an argument it uses `ggufembed::default_model_path()` (`$GGUFEMBED_MODEL`, else the
//! Q8_0 model that `cargo xtask fetch-model` puts in the cache directory).

use ggufembed::{EmbedOptions, Model, Options, Prompt};

fn main() -> Result<(), ggufembed::Error> {
    let path = std::env::args_os()
        .nth(1)
        .map_or_else(ggufembed::default_model_path, Into::into);
    let model = Model::open(&path, Options::default())?;
    println!(
        "{} ({}), {} dims {:?}, context {} tokens, {} threads, backend {}",
        path.display(),
        model.info().weight_type,
        model.output_dim(),
        model.dimensions(),
        model.context_length(),
        model.threads(),
        model.backend()
    );

    let one = model.embed_one("Hello, world!")?;
    println!(
        "\"Hello, world!\" -> [{:.4}, {:.4}, {:.4}, ...]",
        one[0], one[1], one[2]
    );

    let query = "Which planet is known as the Red Planet?";
    let documents = [
        "Venus is often called Earth's twin because of its similar size and proximity.",
        "Mars, known for its reddish appearance, is often referred to as the Red Planet.",
        "Jupiter, the largest planet in our solar system, has a prominent red spot.",
        "Saturn, famous for its rings, is sometimes mistaken for the Red Planet.",
    ];
    let q = model.embed_one_with(
        query,
        EmbedOptions::default().prompt(Prompt::Query).dim(256),
    )?;
    let d = model.embed_with(
        &documents,
        EmbedOptions::default().prompt(Prompt::Document).dim(256),
    )?;
    let mut ranked: Vec<(f32, &str)> = d
        .iter()
        .zip(documents)
        .map(|(v, text)| (ggufembed::cosine_similarity(&q, v), text))
        .collect();
    ranked.sort_by(|a, b| b.0.total_cmp(&a.0));
    println!("query: {query}");
    for (score, text) in ranked {
        println!("  {score:.4}  {text}");
    }
    Ok(())
}
