"""The network as a graph of nodes: built from a chapter, walked forward and backward.

A `Graph` is its nodes in forward order (each reads the data, parameters or earlier nodes), the
last one the cost. It is data: documents, figures, checks and exercises walk `graph.nodes`,
`graph.consumers` and the quantity names of tracer.engine.keys; nobody rebuilds the network from
names. The forward pass runs the nodes in order; the backward pass runs them in reverse, each
node's vector–Jacobian product passing the gradient it received to its inputs and parameters. A
node whose value feeds several nodes receives the sum of what each of them passes back (the
article's "sum all the incoming gradients to a node, from all the possible paths"); the trace
keeps each part (`dA1_via_Z2`) and the sum.

A chapter's `[network] layers` list is a shorthand compiled here into nodes (each layer kind one
class in LAYERS), and its `[network] graph` list writes the nodes out one by one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, ClassVar

import numpy as np

from tracer.engine import batchnorm, dropout, keys
from tracer.engine.keys import COST, INPUT, TARGET
from tracer.engine.nodes import NODES, Cost, Linear, Node, activations

#: Called on every value a node computes; carry="rounded" rounds it there (None: full precision).
Carry = Callable[[str, np.ndarray], np.ndarray] | None


class GraphError(ValueError):
    """A graph that cannot be built: the message says which node and what was expected."""


# --------------------------------------------------------------------------- the graph


def input_shape(n_inputs: int | tuple[int, ...], m: int) -> tuple[int, ...]:
    """The input batch's shape: features × m, or for images channels × height × width × m."""
    return (*n_inputs, m) if isinstance(n_inputs, tuple) else (n_inputs, m)


class Graph:
    """Nodes in forward order, the last one the cost; the data are A0 (the input) and Y (the labels)."""

    def __init__(self, nodes: list[Node]):
        self.nodes = list(nodes)
        self.by_name = {n.name: n for n in self.nodes}
        self.cost: Cost = self.nodes[-1]  # type: ignore[assignment]
        if not isinstance(self.cost, Cost):
            raise GraphError("the last node of a graph is its cost")
        seen = {INPUT, TARGET}
        for node in self.nodes:
            for name in node.inputs:
                if name not in seen:
                    raise GraphError(f"node {node.name!r} reads {name!r}, which no earlier node computes")
            if node.name in seen:
                raise GraphError(f"two nodes are named {node.name!r}")
            seen.add(node.name)
        #: The node whose value is the prediction ŷ: the last before the cost.
        self.output: Node = self.nodes[-2]
        self.parameter_names = [p for n in self.nodes for p in n.params]
        self.owner = {p: n for n in self.nodes for p in n.params}
        #: For each value (data or node), the nodes that read it, in forward order.
        self.consumers: dict[str, list[Node]] = {INPUT: [], TARGET: []}
        for node in self.nodes:
            self.consumers[node.name] = []
            for name in node.inputs:
                self.consumers[name].append(node)
        # Which values the cost depends on (their gradient is computed), and through which consumers: the
        # inputs a node passes a gradient to (its `receivers`; a drawn dropout mask passes none to A).
        on_path = {COST}
        for node in reversed(self.nodes):
            if node.name in on_path:
                on_path.update(name for name in node.receivers() if name != TARGET)
        self.on_path = on_path
        self.feeds: dict[str, list[Node]] = {name: [c for c in users if c.name in on_path and name in c.receivers()]
                                             for name, users in self.consumers.items()}
        self._backward_plan = self._plan()

    # ----------------------------------------------------------------- as data

    def spec(self) -> list[dict[str, Any]]:
        """The graph as data (a trace keeps it in its meta; `from_spec` builds it again)."""
        return [node.spec() for node in self.nodes]

    @classmethod
    def from_spec(cls, spec: list[dict[str, Any]]) -> "Graph":
        nodes = []
        for entry in spec:
            entry = dict(entry)
            kind = NODES.get(str(entry.pop("op", "")))
            if kind is None:
                raise GraphError(f"unknown node kind in {entry!r}")
            nodes.append(kind(str(entry.pop("name")), tuple(entry.pop("inputs", ())), tuple(entry.pop("params", ())),
                              **entry))
        return cls(nodes)

    def replaced(self, name: str, node: Node) -> "Graph":
        """The same graph with node `name` replaced (a mistake's variant of one node)."""
        return Graph([node if n.name == name else n for n in self.nodes])

    def node(self, name: str) -> Node:
        return self.by_name[name]

    def of_kind(self, kind: type) -> list[Node]:
        return [n for n in self.nodes if isinstance(n, kind)]

    @property
    def linear(self) -> list[Linear]:
        return [n for n in self.nodes if isinstance(n, Linear)]  # type: ignore[misc]

    @property
    def weighted(self) -> list[Node]:
        """The nodes whose weights are drawn at the start (linear and convolution nodes), in forward order."""
        return [n for n in self.nodes if callable(getattr(n, "initial", None))]

    @property
    def bias(self) -> bool:
        """Do the linear nodes have biases (all of them do, or none)?"""
        return any(n.b for n in self.linear)

    @property
    def prediction(self) -> str:
        """The value the cost reads: ŷ, or the logits it was computed from."""
        return self.cost.prediction

    def gradient(self, name: str) -> str:
        """The name of ∂Cost/∂name (a value or a parameter)."""
        return keys.grad(name)

    def target(self, name: str, consumer: Node) -> str:
        """Where `consumer` writes the gradient it passes to `name`: ∂Cost/∂name itself, or its part
        through `consumer` when several nodes read `name`."""
        if name in self.owner or len(self.feeds.get(name, ())) <= 1:
            return keys.grad(name)
        return keys.part(name, consumer.name)

    def names(self) -> keys.Names:
        """Every quantity name this graph's trace records (and the data), as a lookup table."""
        table = [keys.Key(keys.VALUE, INPUT), keys.Key(keys.VALUE, TARGET), keys.Key(keys.GRAD, INPUT),
                 keys.Key(keys.VALUE, COST)]
        for node in self.nodes[:-1]:
            table.append(keys.Key(keys.VALUE, node.name))
            table += [keys.Key(keys.LOCAL, node.name, wrt) for wrt in node.locals]
            table.append(keys.Key(keys.GRAD, node.name))
        for name, users in self.feeds.items():
            if len(users) > 1:
                table += [keys.Key(keys.PART, name, user.name) for user in users]
        for p in self.parameter_names:
            table += [keys.Key(keys.VALUE, p), keys.Key(keys.GRAD, p), keys.Key(keys.UPDATED, p)]
        return keys.Names(table)

    def summary(self, n_inputs: int) -> str:
        """The network in a line: '2 → 3 sigmoid → 1 sigmoid; squared error cost' (a sum of paths by its nodes)."""
        shapes = self.value_shapes(n_inputs, 1)
        parts = [" × ".join(map(str, shapes[INPUT][:-1]))]
        for node in self.nodes[:-1]:
            if node.kind in ("activation", "pooling", "reshape"):
                parts.append(f"{' × '.join(map(str, shapes[node.name][:-1]))} {node.readable}")
            elif node.kind == "merge":
                parts.append(f"{node.name} = {' + '.join(node.inputs)}")
        return " → ".join(parts) + f"; {self.cost.readable} cost"

    # ----------------------------------------------------------------- shapes

    def value_shapes(self, n_inputs: int, m: int) -> dict[str, tuple[int, ...]]:
        """The shape of the data and of every node's value for a batch of m examples."""
        shapes: dict[str, tuple[int, ...]] = {INPUT: input_shape(n_inputs, m), TARGET: (self.output_units(n_inputs), m)}
        for node in self.nodes:
            shapes[node.name] = node.shape([shapes[name] for name in node.inputs])
        return shapes

    def output_units(self, n_inputs: int) -> int:
        shapes: dict[str, tuple[int, ...]] = {INPUT: input_shape(n_inputs, 1)}
        for node in self.nodes[:-1]:
            shapes[node.name] = node.shape([shapes[name] for name in node.inputs])
        return shapes[self.output.name][0]

    def parameter_shapes(self, n_inputs: int) -> dict[str, tuple[int, ...]]:
        values = self.value_shapes(n_inputs, 1)
        out: dict[str, tuple[int, ...]] = {}
        for node in self.nodes:
            out.update(node.parameter_shapes([values[name] for name in node.inputs]))
        return out

    def shapes(self, n_inputs: int, m: int) -> dict[str, tuple[int, ...]]:
        """The shape of every node quantity a step computes: values, local gradients, gradients (and
        their parts), the parameters' gradients; for a batch of m examples."""
        values = self.value_shapes(n_inputs, m)
        params = self.parameter_shapes(n_inputs)
        shapes: dict[str, tuple[int, ...]] = {keys.grad(INPUT): values[INPUT]}
        for node in self.nodes[:-1]:
            ins = [values[name] for name in node.inputs]
            shapes[node.name] = values[node.name]
            shapes.update({keys.local(node.name, wrt): s for wrt, s in node.local_shapes(ins).items()})
            if node.name in self.on_path:
                shapes[keys.grad(node.name)] = values[node.name]
            shapes.update({keys.grad(p): params[p] for p in node.params})
        for name, users in self.feeds.items():
            if len(users) > 1 and name != TARGET:
                shapes.update({keys.part(name, user.name): values[name] for user in users})
        return shapes

    # ----------------------------------------------------------------- the passes

    def forward(self, params: dict[str, np.ndarray], A0: np.ndarray, out: dict[str, np.ndarray],
                carry: Carry = None) -> None:
        """Every node's value into `out` (the trace's record for this step, or scratch space)."""
        self.bind(params, A0, None, out, carry).forward()

    def loss(self, Y: np.ndarray, out: dict[str, np.ndarray], carry: Carry = None) -> float:
        """The cost node's cost of the batch (an L2 penalty is added by tracer.engine.penalties)."""
        cost = self.cost.cost(Y, out[self.cost.prediction])
        return float(carry(COST, np.array(cost))) if carry else cost

    def penalty(self, params: dict[str, np.ndarray], m: int) -> float:
        """The sum of what the nodes that penalise their parameters add to the cost (0 when none does)."""
        return sum((n.penalty([params[p] for p in n.params], m) for n in self.nodes if hasattr(n, "penalty")), 0.0)

    def predict(self, params: dict[str, np.ndarray], A0: np.ndarray, out: dict[str, np.ndarray],
                running: dict[str, np.ndarray] | None = None) -> None:
        """The forward pass of the trained network, as a prediction: every node's value into `out`, with
        each node that behaves otherwise outside training doing so (`infer`: dropout off; batch
        normalisation with the `running` averages the run kept, by tracer.engine.keys.running names)."""
        values = {INPUT: A0}
        for node in self.nodes[:-1]:
            args, weights = [values[n] for n in node.inputs], [params[p] for p in node.params]
            infer = getattr(node, "infer", None)
            values[node.name] = out[node.name]
            if infer is not None:
                out[node.name][...] = infer(args, weights, running)
            else:
                node.forward(args, weights, out=out[node.name])

    def backward(self, params: dict[str, np.ndarray], A0: np.ndarray, Y: np.ndarray, out: dict[str, np.ndarray],
                 carry: Carry = None) -> None:
        """Every gradient into `out`, from the cost back to the input; `carry` sees each as it is made.

        A node read by several others first sums the parts they passed back. The gradient reaching
        the input (dA0) is computed only where `out` has room for it: nothing in training reads it.
        """
        self.bind(params, A0, Y, out, carry).backward()

    def bind(self, params: dict[str, np.ndarray], A0: np.ndarray, Y: np.ndarray | None,
             out: dict[str, np.ndarray], carry: Carry = None) -> "Bound":
        """The passes over these arrays, worked out once: a training loop that reuses its arrays step after
        step runs the bound passes again and again."""
        return Bound(self, params, A0, Y, out, carry)

    def backward_order(self) -> list[tuple[str, str]]:
        """(gradient, the node that computes it) from the cost back to the input: what reaches the
        prediction, then each node's sum over its paths (when several nodes read it) and what it passes on."""
        order = [(keys.grad(self.prediction), COST)]
        for node in reversed(self.nodes[:-1]):
            if len(self.feeds.get(node.name, ())) > 1:
                order.append((keys.grad(node.name), node.name))
            if node.name in self.on_path:
                order += [(target, node.name) for _, target in self.passes(node.name)]
        return order

    def step_order(self) -> list[str]:
        """The quantities of a training step in the order a student computes them: every node's value, the
        cost, the gradients from the cost back (not the one reaching the input), the updated parameters."""
        values = [node.name for node in self.nodes[:-1]] + [COST]
        grads = [q for q, _ in self.backward_order() if q != keys.grad(INPUT)]
        return values + grads + [keys.after(p) for p in self.parameter_names]

    def passes(self, name: str) -> tuple[tuple[str, str], ...]:
        """(input or parameter, the name of the gradient written for it) for what node `name` passes back."""
        return next(step.passes for step in self._backward_plan if step.node.name == name)

    @property
    def _forward_plan(self) -> list[tuple[Node, tuple[str, ...], tuple[str, ...]]]:
        return [(n, n.inputs, n.params) for n in self.nodes[:-1]]

    def _plan(self) -> list["_Backward"]:
        """What each node does in the backward pass, from the cost back (worked out once per graph)."""
        plan = []
        for node in reversed(self.nodes):
            name = node.name
            on_path = name in self.on_path
            feeds = self.feeds.get(name, [])
            parts = tuple(keys.part(name, u.name) for u in feeds) if len(feeds) > 1 else ()
            locals_ = tuple((wrt, keys.local(name, wrt)) for wrt in node.locals)
            passes: tuple[tuple[str, str], ...] = ()
            if on_path:
                passes = tuple((n, keys.grad(n) if n in self.owner else self.target(n, node))
                               for n in node.receivers() if n in self.owner or (n != TARGET and n in self.on_path))
            grad = keys.grad(name) if on_path and node is not self.cost else None
            plan.append(_Backward(node, grad, parts, locals_, passes))
        return plan


@dataclass(frozen=True)
class _Backward:
    """One node's part of the backward pass: the gradient it receives (`grad`, summed from `parts` when
    several nodes read it), the local gradients it records, and where it writes what it passes on."""

    node: Node
    grad: str | None
    parts: tuple[str, ...]
    locals: tuple[tuple[str, str], ...]
    passes: tuple[tuple[str, str], ...]


class Bound:
    """A graph's forward and backward pass over given arrays: the parameters, the batch, the step's
    values (`out`, by quantity name), looked up once rather than at every step."""

    def __init__(self, graph: Graph, params: dict[str, np.ndarray], A0: np.ndarray, Y: np.ndarray | None,
                 out: dict[str, np.ndarray], carry: Carry = None):
        self.graph, self.out, self.carry, self.Y = graph, out, carry, Y

        def value(name: str) -> np.ndarray:
            return A0 if name == INPUT else Y if name == TARGET else out[name]

        self.forwards = [(node.forward, [value(n) for n in node.inputs], [params[p] for p in node.params],
                          out[node.name], node.name) for node in graph.nodes[:-1]
                         if not getattr(node, "drawn", False)]  # a dropout mask: the loop draws it
        self.backwards = []
        for step in graph._backward_plan if Y is not None else ():  # a forward pass alone needs no backward
            node = step.node
            args = [value(n) for n in node.inputs]
            local = {wrt: out[name] for wrt, name in step.locals}
            targets = {wrt: out.get(name) for wrt, name in step.passes}
            carried = [(targets[wrt], name) for wrt, name in step.passes if targets[wrt] is not None]
            self.backwards.append((
                [out[p] for p in step.parts], out[step.grad] if step.grad else None, step.grad,
                node.local if local else None, args, out.get(node.name), local,
                [(local[wrt], name) for wrt, name in step.locals],
                node.vjp if step.passes else None, [params[p] for p in node.params], targets, carried))

    def forward(self) -> None:
        carry = self.carry
        for forward, args, params, out, name in self.forwards:
            forward(args, params, out=out)
            if carry:
                out[...] = carry(name, out)

    def backward(self) -> None:
        carry = self.carry
        for parts, grad, grad_name, local_fn, args, value, local, locals_, vjp, params, targets, carried in \
                self.backwards:
            if parts:  # the sum over every path, once each part has arrived
                np.add(parts[0], parts[1], out=grad)
                for more in parts[2:]:
                    grad += more
                if carry:
                    grad[...] = carry(grad_name, grad)
            if local_fn is not None:
                local_fn(args, value, local)
                if carry:
                    for array, name in locals_:
                        array[...] = carry(name, array)
            if vjp is not None:
                vjp(grad, args, params, value, local, targets)
                if carry:
                    for array, name in carried:
                        array[...] = carry(name, array)


# --------------------------------------------------------------------------- compiling a chapter's network


@dataclass(frozen=True)
class LayerSpec:
    """One entry of a chapter's `[network] layers`: its kind and options (a dense layer: units, activation)."""

    units: int = 0
    activation: str = "sigmoid"
    kind: str = "dense"
    options: tuple[tuple[str, Any], ...] = ()


class LayerKind:
    """A kind of layer in the `[network] layers` shorthand: the nodes layer l adds to the graph.

    Layer l's output is A<l>; its input is `source` (A<l-1>, or A0 for the first layer).
    """

    name: ClassVar[str]

    def read(self, layer: Any) -> LayerSpec:
        """The layer's settings, read from its table of the chapter (a chapter Section, which names the key
        of anything wrong)."""
        raise NotImplementedError

    def nodes(self, spec: LayerSpec, index: int, source: str, bias: bool) -> list[Node]:
        raise NotImplementedError


LAYERS: dict[str, LayerKind] = {}


def layer_kind(cls: type[LayerKind]) -> type[LayerKind]:
    LAYERS[cls.name] = cls()
    return cls


@layer_kind
class Dense(LayerKind):
    """Z<l> = W<l>·A<l-1> + b<l>, then A<l> = activation(Z<l>)."""

    name = "dense"

    def read(self, layer):
        units = layer.integer("units", required=True, minimum=1, maximum=10_000)
        activation = layer.choice("activation", tuple(activations()), default="sigmoid")
        return LayerSpec(units, activation, self.name, self.options(layer))

    @staticmethod
    def options(layer: Any) -> tuple[tuple[str, Any], ...]:
        """Batch normalisation (`batchnorm`, `batchnorm_epsilon`) and dropout (`keep`, a hidden layer's:
        the chapter checks which layer it is on)."""
        options: list[tuple[str, Any]] = []
        if layer.boolean("batchnorm", default=False):
            options.append(("batchnorm", True))
            epsilon = layer.number("batchnorm_epsilon", positive=True)
            if epsilon is not None:
                options.append(("batchnorm_epsilon", epsilon))
        elif "batchnorm_epsilon" in layer:
            layer.fail("batchnorm_epsilon", "batchnorm = true in the same layer (ε is batch normalisation's)",
                       "no batchnorm")
        keep = layer.number("keep", positive=True)
        if keep is not None:
            if keep > 1:
                layer.fail("keep", "a probability of keeping each unit, above 0 and at most 1", repr(keep))
            options.append(("keep", keep))
        return tuple(options)

    def nodes(self, spec, index, source, bias):
        """With `batchnorm`: Z<l> = W<l>·A<l-1> (no b), then μ, σ², Ẑ, Z̃ = γẐ + β before the activation; with
        `keep`: the dropout mask D<l> and Ad<l> = A<l> ⊙ D<l> / keep after it."""
        Z, A = keys.layer_value("Z", index), keys.layer_value("A", index)
        options = dict(spec.options)
        norm = options.get("batchnorm", False)
        out: list[Node] = [Linear.make(Z, source, spec.units, bias and not norm)]
        if norm:
            out += batchnorm.nodes(Z, str(index), options.get("batchnorm_epsilon", batchnorm.EPSILON))
        out.append(activations()[spec.activation](A, (out[-1].name,)))
        if options.get("keep") is not None:
            out += dropout.nodes(A, str(index), options["keep"])
        return out


def cost_node(cost: str, from_logits: bool, output: Node) -> Cost:
    """The cost node reading the graph's output (or, from logits, the output's input)."""
    from tracer.engine.nodes import costs

    cls = costs()[cost]
    if from_logits:
        logits = cls.with_logits
        if logits is None or output.op != logits.logits_of:
            raise GraphError(f"from_logits: the {cost} cost has no form from the logits of a {output.op} node")
        return logits(COST, (output.inputs[0], TARGET))
    return cls(COST, (output.name, TARGET))


def from_layers(layers: tuple[LayerSpec, ...], cost: str, from_logits: bool = False, bias: bool = True) -> Graph:
    """The graph of the `[network] layers` shorthand: each layer's nodes, then the cost."""
    nodes: list[Node] = []
    source = INPUT
    for index, spec in enumerate(layers, start=1):
        added = LAYERS[spec.kind].nodes(spec, index, source, bias)
        nodes += added
        source = added[-1].name
    return Graph(nodes + [cost_node(cost, from_logits, nodes[-1])])


@dataclass(frozen=True)
class NodeSpec:
    """One entry of a chapter's `[network] graph`: a node written out by name, kind and inputs."""

    name: str
    op: str
    inputs: tuple[str, ...]
    options: tuple[tuple[str, Any], ...] = ()


def from_nodes(specs: tuple[NodeSpec, ...], cost: str, from_logits: bool = False, bias: bool = True) -> Graph:
    """The graph a chapter writes out node by node (a skip connection: a node read twice); the last
    node is the prediction, and the cost reads it."""
    nodes: list[Node] = []
    for spec in specs:
        options = dict(spec.options)
        if spec.op == "linear":
            nodes.append(Linear.make(spec.name, spec.inputs[0], int(options["units"]),
                                     bool(options.get("bias", bias)), options.get("weights"), options.get("biases")))
        else:
            nodes.append(NODES[spec.op](spec.name, spec.inputs))
    return Graph(nodes + [cost_node(cost, from_logits, nodes[-1])])


__all__ = ["Graph", "GraphError", "Carry", "LayerSpec", "LayerKind", "LAYERS", "NodeSpec", "from_layers",
           "from_nodes", "cost_node", "input_shape"]
