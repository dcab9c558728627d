// The component's entry: hands the host's imports to the helper and exports the steps.
import kvImport from "rte:saga/kv@0.2.0";
import logImport from "rte:saga/log@0.2.0";
import configImport from "rte:saga/config@0.2.0";

import { bindHost, exportSteps } from "./rte_step.js";
import { reserve } from "./step.js";

bindHost({ kv: kvImport, log: logImport, config: configImport });

export const step = exportSteps(reserve);
