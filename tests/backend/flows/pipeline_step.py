"""A pipeline step: multiplies its two parameters and uploads the product as the ``result`` artifact."""

from __future__ import annotations

from clearml import Task


def main() -> None:
    task = Task.init(project_name="pipeline steps", task_name="step")
    params = task.connect({"value": 1, "factor": 1})
    product = float(params["value"]) * float(params["factor"])
    print(f"step product {product}")
    task.get_logger().report_scalar("product", "value", value=product, iteration=0)
    task.upload_artifact("result", artifact_object={"value": product}, wait_on_upload=True)


if __name__ == "__main__":
    main()
