"""An exported digits model version served by KServe's Python ModelServer, written the way
a KServe user would write it: a ``kserve.Model`` whose ``load`` reads the SavedModel and
whose plain synchronous ``predict`` calls it, and KServe's defaults otherwise.

It runs with the python of .venv-clients/kserve (scripts/bench-kserve builds that from
requirements.txt beside this file) and imports nothing from digits, so ``digits bench
--external`` measures KServe's serving path around the very same model. KServe has no
option for the address: it listens on every interface (gRPC on [::], HTTP on 0.0.0.0).

Usage: python model_server.py --model_dir VERSION_DIR --model_name mnist \\
           --grpc_port 8081 --http_port 8080 [other kserve.model_server options]
"""

import argparse

import kserve
import tensorflow as tf
from kserve import InferOutput, InferRequest, InferResponse


class DigitsModel(kserve.Model):
    """A digits SavedModel: uint8 ``pixels`` [N, 28, 28] in, float32 ``probabilities``
    [N, 10] out (its ``serving_default`` signature)."""

    def __init__(self, name: str, model_dir: str) -> None:
        super().__init__(name)
        self.model_dir = model_dir
        self.loaded = None  # held, so that the signature's variables stay alive
        self.signature = None

    def load(self) -> bool:
        self.loaded = tf.saved_model.load(self.model_dir)
        self.signature = self.loaded.signatures["serving_default"]
        self.ready = True
        return self.ready

    def predict(self, payload: InferRequest, headers: dict[str, str] | None = None
                ) -> InferResponse:
        pixels = payload.inputs[0].as_numpy()  # UINT8 [N, 28, 28], raw_input_contents
        probabilities = self.signature(pixels=tf.constant(pixels))["probabilities"].numpy()
        output = InferOutput(name="probabilities", shape=list(probabilities.shape),
                             datatype="FP32")
        output.set_data_from_numpy(probabilities, binary_data=payload.use_binary_outputs)
        return InferResponse(response_id=payload.id, model_name=self.name,
                             infer_outputs=[output],
                             use_binary_outputs=payload.use_binary_outputs)


parser = argparse.ArgumentParser(parents=[kserve.model_server.parser])
parser.add_argument("--model_dir", required=True,
                    help="An exported digits version directory, e.g. models/mnist/1.")

if __name__ == "__main__":
    args, _ = parser.parse_known_args()
    model = DigitsModel(args.model_name, args.model_dir)
    model.load()
    kserve.ModelServer(grpc_port=args.grpc_port, http_port=args.http_port).start([model])
