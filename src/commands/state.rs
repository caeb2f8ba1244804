//! `state show` and `state reset`.

use pipedrive_config::parse_stream_list;

use crate::StateAction;
use crate::fail::Fail;
use crate::targets::open_destination;

pub(crate) async fn state(action: StateAction) -> Result<(), Fail> {
    match action {
        StateAction::Show(args) => {
            let config = args.company()?;
            let mut destination = open_destination(&config).await?;
            let state = destination.read_state().await?;
            println!(
                "{}",
                serde_json::to_string_pretty(&state).expect("state is JSON")
            );
        }
        StateAction::Reset { stream, config } => {
            let config = config.company()?;
            let name = parse_stream_list(&stream, "state reset")?;
            let mut destination = open_destination(&config).await?;
            for stream in name {
                destination.reset_state(stream).await?;
                eprintln!("state of {stream} reset: its next sync starts from the beginning");
            }
        }
    }
    Ok(())
}
