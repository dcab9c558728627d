//! Bounds on a component before it is compiled.
//!
//! Compiling is the one part of loading a plugin whose cost its author chooses: memory grows
//! with the square of how deep components nest, a large function of nested blocks takes
//! gigabytes, and a component that instantiates a nested component several times, at several
//! levels, multiplies what the compiler must inline. [`scan`] reads the component once, in
//! time linear in its size and memory linear in its nesting (never deeper than the bound), and
//! refuses it at the first bound it crosses, before anything is compiled.

use std::ops::Range;
use std::time::Duration;

use wasmparser::{
    BinaryReader, BinaryReaderError, ComponentAlias, ComponentExternName, ComponentExternalKind,
    ComponentImport, ComponentInstance, ComponentOuterAliasKind, ComponentType, ComponentTypeRef,
    CoreType, Encoding, FunctionBody, Instance, Operator, Parser, Payload,
};

/// Host-wide bounds on a plugin component, checked before it is compiled. A manifest cannot
/// change them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadBounds {
    /// Largest plugin file, in bytes.
    pub max_file_bytes: u64,
    /// Deepest nesting of components in components, and of component or instance types in
    /// types (the plugin itself is depth 1).
    pub max_nesting: u32,
    /// Most core modules defined, at any depth.
    pub max_modules: u32,
    /// Most components defined inside the plugin, at any depth.
    pub max_components: u32,
    /// Most core instances one instantiation of the plugin creates, counting those of the
    /// nested components it instantiates, as often as it instantiates them.
    pub max_core_instances: u64,
    /// Most component instances one instantiation of the plugin creates, counted the same way.
    pub max_component_instances: u64,
    /// Most linear memories one instantiation of the plugin creates.
    pub max_memories: u64,
    /// Most functions to compile: core function bodies and canonical functions (lifts,
    /// lowers, built-ins), in every module and component.
    pub max_functions: u64,
    /// Largest function body, in bytes.
    pub max_function_bytes: u64,
    /// Deepest nesting of blocks (`block`, `loop`, `if`, `try`) in one function.
    pub max_block_depth: u32,
    /// Most blocks in one function, nested or not: compile time grows with their square.
    pub max_function_blocks: u32,
    /// All function bodies together, in bytes.
    pub max_code_bytes: u64,
    /// Longest the compile of one plugin may take before its load fails.
    pub compile_timeout: Duration,
}

// Counts no plugin comes near, so no setting: the largest example plugins (Python: 14 core
// modules and instances, 2 components, 13,497 functions; JavaScript: 4 components, 2
// memories) stay well below them.
const MAX_MODULES: u32 = 100;
const MAX_COMPONENTS: u32 = 100;
const MAX_CORE_INSTANCES: u64 = 200;
const MAX_COMPONENT_INSTANCES: u64 = 200;
const MAX_MEMORIES: u64 = 16;
const MAX_FUNCTIONS: u64 = 200_000;

impl LoadBounds {
    /// The bounds `config` sets.
    pub fn from_config(config: &crate::Config) -> Self {
        Self {
            max_file_bytes: config.plugin_max_file_mb.saturating_mul(1 << 20),
            max_nesting: config.plugin_max_nesting,
            max_modules: MAX_MODULES,
            max_components: MAX_COMPONENTS,
            max_core_instances: MAX_CORE_INSTANCES,
            max_component_instances: MAX_COMPONENT_INSTANCES,
            max_memories: MAX_MEMORIES,
            max_functions: MAX_FUNCTIONS,
            max_function_bytes: config.plugin_max_function_kb.saturating_mul(1 << 10),
            max_block_depth: config.plugin_max_block_depth,
            max_function_blocks: config.plugin_max_function_blocks,
            max_code_bytes: config.plugin_max_code_mb.saturating_mul(1 << 20),
            compile_timeout: config.plugin_compile_timeout,
        }
    }

    /// No bound at all: for measuring a component.
    pub fn unlimited() -> Self {
        Self {
            max_file_bytes: u64::MAX,
            max_nesting: u32::MAX,
            max_modules: u32::MAX,
            max_components: u32::MAX,
            max_core_instances: u64::MAX,
            max_component_instances: u64::MAX,
            max_memories: u64::MAX,
            max_functions: u64::MAX,
            max_function_bytes: u64::MAX,
            max_block_depth: u32::MAX,
            max_function_blocks: u32::MAX,
            max_code_bytes: u64::MAX,
            compile_timeout: Duration::MAX,
        }
    }
}

impl Default for LoadBounds {
    /// The defaults of [`crate::Config`].
    fn default() -> Self {
        Self::from_config(&crate::Config::default())
    }
}

/// One of the [`LoadBounds`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bound {
    /// [`LoadBounds::max_file_bytes`].
    FileSize,
    /// [`LoadBounds::max_nesting`], of components.
    Nesting,
    /// [`LoadBounds::max_nesting`], of types.
    TypeNesting,
    /// [`LoadBounds::max_modules`].
    Modules,
    /// [`LoadBounds::max_components`].
    Components,
    /// [`LoadBounds::max_core_instances`].
    CoreInstances,
    /// [`LoadBounds::max_component_instances`].
    ComponentInstances,
    /// [`LoadBounds::max_memories`].
    Memories,
    /// [`LoadBounds::max_functions`].
    Functions,
    /// [`LoadBounds::max_function_bytes`].
    FunctionSize,
    /// [`LoadBounds::max_block_depth`].
    BlockDepth,
    /// [`LoadBounds::max_function_blocks`].
    FunctionBlocks,
    /// [`LoadBounds::max_code_bytes`].
    CodeSize,
}

impl Bound {
    /// The configuration key that sets it, if one does.
    pub fn key(self) -> Option<&'static str> {
        Some(match self {
            Bound::FileSize => "plugin_max_file_mb",
            Bound::Nesting | Bound::TypeNesting => "plugin_max_nesting",
            Bound::FunctionSize => "plugin_max_function_kb",
            Bound::BlockDepth => "plugin_max_block_depth",
            Bound::FunctionBlocks => "plugin_max_function_blocks",
            Bound::CodeSize => "plugin_max_code_mb",
            Bound::Modules
            | Bound::Components
            | Bound::CoreInstances
            | Bound::ComponentInstances
            | Bound::Memories
            | Bound::Functions => return None,
        })
    }

    fn describe(self, found: u64) -> String {
        match self {
            Bound::FileSize => format!("the file is {found} bytes"),
            Bound::Nesting => format!("nests components {found} deep"),
            Bound::TypeNesting => format!("nests component types {found} deep"),
            Bound::Modules => format!("defines {found} core modules"),
            Bound::Components => format!("defines {found} nested components"),
            Bound::CoreInstances => format!("would create {found} core instances"),
            Bound::ComponentInstances => format!("would create {found} component instances"),
            Bound::Memories => format!("would create {found} linear memories"),
            Bound::Functions => format!("defines {found} functions"),
            Bound::FunctionSize => format!("has a function body of {found} bytes"),
            Bound::BlockDepth => format!("nests blocks {found} deep in one function"),
            Bound::FunctionBlocks => format!("has {found} blocks in one function"),
            Bound::CodeSize => format!("has {found} bytes of function bodies"),
        }
    }
}

/// Why [`scan`] refused a component.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    /// It crosses a bound. `found` is exact for sizes and for the blocks of a function;
    /// otherwise it is the count at which the scan stopped, one past the limit.
    #[error("{}", exceeded(*bound, *found, *limit))]
    Exceeds {
        /// The bound crossed.
        bound: Bound,
        /// What the component has.
        found: u64,
        /// The bound's value.
        limit: u64,
    },
    /// It instantiates a module or component that it imports or takes from an instance, whose
    /// cost cannot be known before compile. No toolchain emits this.
    #[error(
        "instantiates a {0} it does not define (imported, or taken from an instance): its cost \
         cannot be bounded before compile"
    )]
    Unbounded(&'static str),
    /// It is not a well-formed component.
    #[error("invalid component: {0}")]
    Invalid(String),
}

fn exceeded(bound: Bound, found: u64, limit: u64) -> String {
    let what = bound.describe(found);
    match bound.key() {
        Some(key) => format!("{what}; the limit is {limit} ({key})"),
        None => format!("{what}; the limit is {limit}"),
    }
}

impl From<BinaryReaderError> for ScanError {
    fn from(e: BinaryReaderError) -> Self {
        ScanError::Invalid(e.to_string())
    }
}

/// What a component holds, as far as the bounds are concerned.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Shape {
    /// Deepest nesting of components (the plugin itself is 1).
    pub nesting: u32,
    /// Deepest nesting of component and instance types.
    pub type_nesting: u32,
    /// Core modules defined.
    pub modules: u32,
    /// Components defined inside the plugin.
    pub components: u32,
    /// Core instances one instantiation creates.
    pub core_instances: u64,
    /// Component instances one instantiation creates.
    pub component_instances: u64,
    /// Linear memories one instantiation creates.
    pub memories: u64,
    /// Function bodies and canonical functions.
    pub functions: u64,
    /// Largest function body, in bytes.
    pub largest_function: u64,
    /// Deepest block nesting in any function.
    pub block_depth: u32,
    /// Most blocks in any function.
    pub function_blocks: u32,
    /// All function bodies, in bytes.
    pub code_bytes: u64,
}

/// What instantiating a component creates.
#[derive(Debug, Clone, Copy, Default)]
struct Cost {
    core_instances: u64,
    component_instances: u64,
    memories: u64,
}

/// A component being read, with what its index spaces of modules and components hold.
/// `None` is an item whose cost is not known before compile (imported, or taken from an
/// instance's exports).
#[derive(Default)]
struct ComponentFrame {
    /// Memories each module defines.
    modules: Vec<Option<u64>>,
    components: Vec<Option<Cost>>,
    /// What one instantiation of this component creates, as read so far.
    cost: Cost,
}

enum Frame {
    Component(ComponentFrame),
    Module { memories: u64 },
}

struct Scanner<'b> {
    bytes: &'b [u8],
    bounds: &'b LoadBounds,
    shape: Shape,
    stack: Vec<Frame>,
}

/// Check `bytes`, a component, against `bounds` without compiling it; returns its
/// [`Shape`], or the first bound it crosses.
pub fn scan(bytes: &[u8], bounds: &LoadBounds) -> Result<Shape, ScanError> {
    at_most(Bound::FileSize, bytes.len() as u64, bounds.max_file_bytes)?;
    let mut scanner = Scanner {
        bytes,
        bounds,
        shape: Shape::default(),
        stack: Vec::new(),
    };
    for payload in Parser::new(0).parse_all(bytes) {
        if scanner.payload(payload?)? {
            return Ok(scanner.shape);
        }
    }
    // `parse_all` ends with the outermost `End`, or an error.
    Err(ScanError::Invalid("unexpected end of the component".into()))
}

fn at_most(bound: Bound, found: u64, limit: u64) -> Result<(), ScanError> {
    if found > limit {
        return Err(ScanError::Exceeds {
            bound,
            found,
            limit,
        });
    }
    Ok(())
}

impl Scanner<'_> {
    /// Account for one payload; true at the end of the outermost component.
    fn payload(&mut self, payload: Payload<'_>) -> Result<bool, ScanError> {
        let b = self.bounds;
        match payload {
            // The outermost header; nested ones are pushed at their section.
            Payload::Version { encoding, .. } if self.stack.is_empty() => {
                if encoding != Encoding::Component {
                    return Err(ScanError::Invalid("not a component".into()));
                }
                self.push(Frame::Component(ComponentFrame::default()))?;
            }
            Payload::ModuleSection { .. } => {
                self.shape.modules += 1;
                at_most(
                    Bound::Modules,
                    self.shape.modules.into(),
                    b.max_modules.into(),
                )?;
                self.push(Frame::Module { memories: 0 })?;
            }
            Payload::ComponentSection { .. } => {
                self.shape.components += 1;
                at_most(
                    Bound::Components,
                    self.shape.components.into(),
                    b.max_components.into(),
                )?;
                self.push(Frame::Component(ComponentFrame::default()))?;
            }
            Payload::End(_) => return self.end(),
            Payload::MemorySection(reader) => {
                if let Some(Frame::Module { memories }) = self.stack.last_mut() {
                    *memories += u64::from(reader.count());
                }
            }
            Payload::CodeSectionStart { count, size, .. } => {
                self.shape.functions += u64::from(count);
                at_most(Bound::Functions, self.shape.functions, b.max_functions)?;
                self.shape.code_bytes += u64::from(size);
                at_most(Bound::CodeSize, self.shape.code_bytes, b.max_code_bytes)?;
            }
            Payload::CodeSectionEntry(body) => self.function(&body)?,
            Payload::ComponentCanonicalSection(reader) => {
                self.shape.functions += u64::from(reader.count());
                at_most(Bound::Functions, self.shape.functions, b.max_functions)?;
            }
            Payload::ComponentTypeSection(reader) => self.types(reader.range())?,
            Payload::InstanceSection(reader) => {
                for instance in reader {
                    if let Instance::Instantiate { module_index, .. } = instance? {
                        let frame = self.component();
                        let memories = module_cost(frame, module_index)?;
                        frame.cost.core_instances += 1;
                        frame.cost.memories = frame.cost.memories.saturating_add(memories);
                        self.check_cost()?;
                    }
                }
            }
            Payload::ComponentInstanceSection(reader) => {
                for instance in reader {
                    if let ComponentInstance::Instantiate {
                        component_index, ..
                    } = instance?
                    {
                        let frame = self.component();
                        let inner = frame
                            .components
                            .get(component_index as usize)
                            .copied()
                            .flatten()
                            .ok_or(ScanError::Unbounded("component"))?;
                        let cost = &mut frame.cost;
                        cost.core_instances =
                            cost.core_instances.saturating_add(inner.core_instances);
                        cost.component_instances = cost
                            .component_instances
                            .saturating_add(inner.component_instances)
                            .saturating_add(1);
                        cost.memories = cost.memories.saturating_add(inner.memories);
                        self.check_cost()?;
                    }
                }
            }
            Payload::ComponentAliasSection(reader) => {
                for alias in reader {
                    match alias? {
                        ComponentAlias::InstanceExport { kind, .. } => {
                            self.add_item(kind, None, None);
                        }
                        ComponentAlias::Outer { kind, count, index } => {
                            let outer =
                                self.stack
                                    .len()
                                    .checked_sub(1 + count as usize)
                                    .and_then(|i| match &self.stack[i] {
                                        Frame::Component(f) => Some(f),
                                        Frame::Module { .. } => None,
                                    });
                            let index = index as usize;
                            match kind {
                                ComponentOuterAliasKind::CoreModule => {
                                    let memories =
                                        outer.and_then(|f| f.modules.get(index).copied().flatten());
                                    self.component().modules.push(memories);
                                }
                                ComponentOuterAliasKind::Component => {
                                    let cost = outer
                                        .and_then(|f| f.components.get(index).copied().flatten());
                                    self.component().components.push(cost);
                                }
                                ComponentOuterAliasKind::CoreType
                                | ComponentOuterAliasKind::Type => {}
                            }
                        }
                        ComponentAlias::CoreInstanceExport { .. } => {}
                    }
                }
            }
            Payload::ComponentImportSection(reader) => {
                for import in reader {
                    match import?.ty {
                        ComponentTypeRef::Module(_) => self.component().modules.push(None),
                        ComponentTypeRef::Component(_) => self.component().components.push(None),
                        _ => {}
                    }
                }
            }
            Payload::ComponentExportSection(reader) => {
                for export in reader {
                    let export = export?;
                    let frame = self.component();
                    let index = export.index as usize;
                    let memories = frame.modules.get(index).copied().flatten();
                    let cost = frame.components.get(index).copied().flatten();
                    self.add_item(export.kind, memories, cost);
                }
            }
            _ => {}
        }
        Ok(false)
    }

    /// Add a module or component to the current component's index space (other kinds are
    /// not tracked).
    fn add_item(&mut self, kind: ComponentExternalKind, memories: Option<u64>, cost: Option<Cost>) {
        let frame = self.component();
        match kind {
            ComponentExternalKind::Module => frame.modules.push(memories),
            ComponentExternalKind::Component => frame.components.push(cost),
            _ => {}
        }
    }

    fn push(&mut self, frame: Frame) -> Result<(), ScanError> {
        if let Frame::Component(_) = frame {
            let depth = self
                .stack
                .iter()
                .filter(|f| matches!(f, Frame::Component(_)))
                .count() as u32
                + 1;
            at_most(Bound::Nesting, depth.into(), self.bounds.max_nesting.into())?;
            self.shape.nesting = self.shape.nesting.max(depth);
        }
        self.stack.push(frame);
        Ok(())
    }

    /// The end of a module or component: it joins its parent's index space.
    fn end(&mut self) -> Result<bool, ScanError> {
        let Some(done) = self.stack.pop() else {
            return Ok(true);
        };
        let Some(Frame::Component(parent)) = self.stack.last_mut() else {
            if let Frame::Component(root) = done {
                self.shape.core_instances = root.cost.core_instances;
                self.shape.component_instances = root.cost.component_instances;
                self.shape.memories = root.cost.memories;
            }
            return Ok(true);
        };
        match done {
            Frame::Module { memories } => parent.modules.push(Some(memories)),
            Frame::Component(child) => parent.components.push(Some(child.cost)),
        }
        Ok(false)
    }

    /// The component being read. Component sections only occur inside components.
    fn component(&mut self) -> &mut ComponentFrame {
        match self.stack.last_mut() {
            Some(Frame::Component(frame)) => frame,
            _ => unreachable!("the parser yields component sections only inside a component"),
        }
    }

    fn check_cost(&mut self) -> Result<(), ScanError> {
        let b = self.bounds;
        let cost = self.component().cost;
        at_most(
            Bound::CoreInstances,
            cost.core_instances,
            b.max_core_instances,
        )?;
        at_most(
            Bound::ComponentInstances,
            cost.component_instances,
            b.max_component_instances,
        )?;
        at_most(Bound::Memories, cost.memories, b.max_memories)
    }

    /// One function body: its size, and how deep its blocks nest.
    fn function(&mut self, body: &FunctionBody<'_>) -> Result<(), ScanError> {
        let b = self.bounds;
        let size = body.range().len() as u64;
        self.shape.largest_function = self.shape.largest_function.max(size);
        at_most(Bound::FunctionSize, size, b.max_function_bytes)?;
        let mut ops = body.get_operators_reader()?;
        let (mut depth, mut deepest, mut blocks) = (0u32, 0u32, 0u32);
        while !ops.eof() {
            match ops.read()? {
                Operator::Block { .. }
                | Operator::Loop { .. }
                | Operator::If { .. }
                | Operator::Try { .. }
                | Operator::TryTable { .. } => {
                    depth += 1;
                    blocks += 1;
                    deepest = deepest.max(depth);
                }
                Operator::End | Operator::Delegate { .. } => depth = depth.saturating_sub(1),
                _ => {}
            }
        }
        self.shape.block_depth = self.shape.block_depth.max(deepest);
        self.shape.function_blocks = self.shape.function_blocks.max(blocks);
        at_most(Bound::BlockDepth, deepest.into(), b.max_block_depth.into())?;
        at_most(
            Bound::FunctionBlocks,
            blocks.into(),
            b.max_function_blocks.into(),
        )
    }

    /// A component type section: how deep component and instance types nest in it. Read
    /// here without recursion, since the parser's own reader of these types recurses once
    /// per level.
    fn types(&mut self, range: Range<usize>) -> Result<(), ScanError> {
        let limit = self.bounds.max_nesting;
        let mut reader = BinaryReader::new(&self.bytes[range.clone()], range.start);
        let mut entries = reader.read_var_u32()?;
        // Per open component (true) or instance (false) type: declarations left to read.
        let mut open: Vec<(u32, bool)> = Vec::new();
        loop {
            while open.last().is_some_and(|(left, _)| *left == 0) {
                open.pop();
            }
            let Some((left, component)) = open.last_mut() else {
                if entries == 0 {
                    return Ok(());
                }
                entries -= 1;
                self.one_type(&mut reader, &mut open, limit)?;
                continue;
            };
            *left -= 1;
            let component = *component;
            let at = reader.original_position();
            match reader.read_u8()? {
                0x03 if component => {
                    reader.read::<ComponentImport<'_>>()?;
                }
                0x00 => {
                    reader.read::<CoreType<'_>>()?;
                }
                0x01 => self.one_type(&mut reader, &mut open, limit)?,
                0x02 => {
                    reader.read::<ComponentAlias<'_>>()?;
                }
                0x04 => {
                    reader.read::<ComponentExternName<'_>>()?;
                    reader.read::<ComponentTypeRef>()?;
                }
                byte => {
                    return Err(ScanError::Invalid(format!(
                        "invalid leading byte (0x{byte:x}) for a type declaration (at offset \
                         {at})"
                    )));
                }
            }
        }
    }

    /// One type: a component or instance type opens a level; any other is read whole (none
    /// of them nests).
    fn one_type(
        &mut self,
        reader: &mut BinaryReader<'_>,
        open: &mut Vec<(u32, bool)>,
        limit: u32,
    ) -> Result<(), ScanError> {
        let leading = reader.clone().read_u8()?;
        if leading != 0x41 && leading != 0x42 {
            reader.read::<ComponentType<'_>>()?;
            return Ok(());
        }
        reader.read_u8()?;
        let declarations = reader.read_var_u32()?;
        let depth = open.len() as u32 + 1;
        at_most(Bound::TypeNesting, depth.into(), limit.into())?;
        self.shape.type_nesting = self.shape.type_nesting.max(depth);
        open.push((declarations, leading == 0x41));
        Ok(())
    }
}

/// The memories module `index` of `frame` defines, or why that is not known.
fn module_cost(frame: &ComponentFrame, index: u32) -> Result<u64, ScanError> {
    frame
        .modules
        .get(index as usize)
        .copied()
        .flatten()
        .ok_or(ScanError::Unbounded("core module"))
}

#[cfg(test)]
mod tests {
    use wasm_encoder::{
        CodeSection, Component, ComponentImportSection, ComponentInstanceSection, ComponentTypeRef,
        ComponentTypeSection, Encode, Function, FunctionSection, InstanceSection, MemorySection,
        MemoryType, Module, ModuleArg, ModuleSection, NestedComponentSection, TypeSection,
    };

    use super::*;

    const HEADER: [u8; 8] = *b"\0asm\x0d\0\x01\0";

    /// Components nested `depth` deep (the outermost is depth 1), built outside in.
    fn nested_components(depth: usize) -> Vec<u8> {
        let mut sizes = vec![HEADER.len()];
        for k in 1..depth {
            let mut size = Vec::new();
            sizes[k - 1].encode(&mut size);
            sizes.push(HEADER.len() + 1 + size.len() + sizes[k - 1]);
        }
        let mut out = Vec::new();
        for k in (0..depth).rev() {
            out.extend(HEADER);
            if k > 0 {
                out.push(4);
                sizes[k - 1].encode(&mut out);
            }
        }
        out
    }

    /// One component type with component types nested `depth` deep.
    fn nested_types(depth: usize) -> Vec<u8> {
        let mut section = vec![1];
        for _ in 1..depth {
            section.extend([0x41, 1, 0x01]);
        }
        section.extend([0x41, 0]);
        let mut out = HEADER.to_vec();
        out.push(7);
        section.len().encode(&mut out);
        out.extend(section);
        out
    }

    /// A module with `memories` memories and one function per body (`[] -> []`, no locals,
    /// each body its instructions ending in `end`).
    fn module(memories: u32, bodies: &[Vec<u8>]) -> Module {
        let mut m = Module::new();
        let mut types = TypeSection::new();
        types.ty().function([], []);
        m.section(&types);
        let mut funcs = FunctionSection::new();
        let mut code = CodeSection::new();
        for body in bodies {
            funcs.function(0);
            let mut f = Function::new([]);
            f.raw(body.iter().copied());
            code.function(&f);
        }
        m.section(&funcs);
        let mut mems = MemorySection::new();
        for _ in 0..memories {
            mems.memory(MemoryType {
                minimum: 1,
                maximum: None,
                memory64: false,
                shared: false,
                page_size_log2: None,
            });
        }
        m.section(&mems);
        m.section(&code);
        m
    }

    /// A component defining `module` and instantiating it `times` times.
    fn instantiating(module: &Module, times: u32) -> Component {
        let mut c = Component::new();
        c.section(&ModuleSection(module));
        let mut instances = InstanceSection::new();
        for _ in 0..times {
            instances.instantiate(0, Vec::<(&str, ModuleArg)>::new());
        }
        c.section(&instances);
        c
    }

    /// `depth` levels of components, each instantiating the one inside it `fanout` times;
    /// the innermost instantiates a module with one memory once.
    fn fan_out(depth: u32, fanout: u32) -> Vec<u8> {
        let mut c = instantiating(&module(1, &[]), 1);
        for _ in 1..depth {
            let mut outer = Component::new();
            outer.section(&NestedComponentSection(&c));
            let mut instances = ComponentInstanceSection::new();
            for _ in 0..fanout {
                instances.instantiate(0, Vec::<(&str, _, u32)>::new());
            }
            outer.section(&instances);
            c = outer;
        }
        c.finish()
    }

    /// A function body of `groups` runs of `depth` nested blocks.
    fn blocks(groups: usize, depth: usize) -> Vec<u8> {
        let mut body = Vec::new();
        for _ in 0..groups {
            body.extend([0x02, 0x40].repeat(depth));
            body.extend(vec![0x0b; depth]);
        }
        body.push(0x0b);
        body
    }

    fn exceeds(bytes: &[u8], bounds: &LoadBounds) -> (Bound, String) {
        match scan(bytes, bounds) {
            Err(e @ ScanError::Exceeds { bound, .. }) => (bound, e.to_string()),
            other => panic!("expected a bound crossed, got {other:?}"),
        }
    }

    #[test]
    fn deep_components_are_refused_naming_the_setting() {
        let bounds = LoadBounds::default();
        assert_eq!(scan(&nested_components(16), &bounds).unwrap().nesting, 16);
        let (bound, message) = exceeds(&nested_components(15_000), &bounds);
        assert_eq!(bound, Bound::Nesting);
        assert_eq!(
            message,
            "nests components 17 deep; the limit is 16 (plugin_max_nesting)"
        );
    }

    #[test]
    fn deep_types_are_read_without_recursion() {
        // The parser's own reader recurses once per level and overflows a thread's stack a
        // few thousand levels down; the scan must not, even with no bound at all.
        let bytes = nested_types(1_000_000);
        let shape = std::thread::Builder::new()
            .stack_size(256 << 10)
            .spawn(move || scan(&bytes, &LoadBounds::unlimited()).unwrap())
            .unwrap()
            .join()
            .unwrap();
        assert_eq!(shape.type_nesting, 1_000_000);
        let (bound, message) = exceeds(&nested_types(2_000), &LoadBounds::default());
        assert_eq!(bound, Bound::TypeNesting);
        assert!(message.contains("(plugin_max_nesting)"), "{message}");
    }

    #[test]
    fn blocks_are_measured_per_function() {
        let c = instantiating(&module(1, &[blocks(3, 40), blocks(1, 70), blocks(0, 0)]), 1);
        let shape = scan(&c.finish(), &LoadBounds::unlimited()).unwrap();
        assert_eq!(shape.block_depth, 70);
        assert_eq!(shape.function_blocks, 120);
        assert_eq!(shape.functions, 3);
        assert_eq!(shape.largest_function, 1 + 3 * 40 * 3 + 1);

        let deep = instantiating(&module(1, &[blocks(1, 6_000)]), 1).finish();
        let (bound, message) = exceeds(&deep, &LoadBounds::default());
        assert_eq!(bound, Bound::BlockDepth);
        assert_eq!(
            message,
            "nests blocks 6000 deep in one function; the limit is 5000 (plugin_max_block_depth)"
        );
        let many = instantiating(&module(1, &[blocks(12_000, 1)]), 1).finish();
        assert_eq!(
            exceeds(&many, &LoadBounds::default()).0,
            Bound::FunctionBlocks
        );
    }

    #[test]
    fn sizes_are_bounded() {
        // Bodies of 4097 bytes: no locals, 4095 `nop`s, `end`.
        let body = [vec![0x01; 4095], vec![0x0b]].concat();
        let c = instantiating(&module(1, &[body.clone(), body]), 1).finish();
        let tight = |f: fn(&mut LoadBounds)| {
            let mut b = LoadBounds::unlimited();
            f(&mut b);
            exceeds(&c, &b).0
        };
        assert_eq!(tight(|b| b.max_function_bytes = 4096), Bound::FunctionSize);
        assert_eq!(tight(|b| b.max_code_bytes = 8000), Bound::CodeSize);
        assert_eq!(tight(|b| b.max_functions = 1), Bound::Functions);
        assert_eq!(tight(|b| b.max_file_bytes = 100), Bound::FileSize);
        let shape = scan(&c, &LoadBounds::unlimited()).unwrap();
        assert_eq!(shape.largest_function, 4097);
        // Each body with its two-byte size.
        assert_eq!(shape.code_bytes, 2 * (2 + 4097));
    }

    #[test]
    fn instances_and_memories_count_every_instantiation() {
        // A module of three memories instantiated twice: six memories.
        let twice = instantiating(&module(3, &[]), 2).finish();
        let shape = scan(&twice, &LoadBounds::unlimited()).unwrap();
        assert_eq!((shape.core_instances, shape.memories), (2, 6));

        // Three levels of threefold instantiation around one instance: 27 core instances,
        // 3 + 9 + 27 component instances, though the file defines each once.
        let shape = scan(&fan_out(4, 3), &LoadBounds::unlimited()).unwrap();
        assert_eq!(shape.core_instances, 27);
        assert_eq!(shape.component_instances, 39);
        assert_eq!(shape.memories, 27);
        assert_eq!((shape.modules, shape.components), (1, 3));

        // Ten levels of fourfold: a million instances from a file of a few hundred bytes.
        let (bound, message) = exceeds(&fan_out(11, 4), &LoadBounds::default());
        assert_eq!(bound, Bound::Memories, "{message}");
        let bounds = LoadBounds {
            max_memories: u64::MAX,
            ..LoadBounds::default()
        };
        let (bound, message) = exceeds(&fan_out(11, 4), &bounds);
        assert_eq!(bound, Bound::ComponentInstances);
        assert_eq!(
            message,
            "would create 255 component instances; the limit is 200"
        );
    }

    #[test]
    fn instantiating_an_imported_component_is_refused() {
        let mut c = Component::new();
        let mut types = ComponentTypeSection::new();
        types.component(&wasm_encoder::ComponentType::new());
        c.section(&types);
        let mut imports = ComponentImportSection::new();
        imports.import("inner", ComponentTypeRef::Component(0));
        c.section(&imports);
        let mut instances = ComponentInstanceSection::new();
        instances.instantiate(0, Vec::<(&str, _, u32)>::new());
        c.section(&instances);
        let err = scan(&c.finish(), &LoadBounds::unlimited()).unwrap_err();
        assert!(matches!(err, ScanError::Unbounded("component")), "{err}");
    }

    #[test]
    fn what_is_not_a_component_is_invalid() {
        let core = Module::new().finish();
        assert!(matches!(
            scan(&core, &LoadBounds::default()),
            Err(ScanError::Invalid(_))
        ));
        let mut cut = nested_components(3);
        cut.truncate(cut.len() - 4);
        assert!(matches!(
            scan(&cut, &LoadBounds::default()),
            Err(ScanError::Invalid(_))
        ));
    }
}
