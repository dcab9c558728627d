import { render } from "preact";
import { App } from "./app";
import { keepCellsLabelled } from "./lib/cells";
import "./styles.css";

const root = document.getElementById("app")!;
render(<App />, root);
keepCellsLabelled(root);
